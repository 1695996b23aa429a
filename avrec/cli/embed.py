"""`avrec embed` (being written)."""

from . import app  # noqa: F401
