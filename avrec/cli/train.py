"""`avrec train` (being written)."""

from . import app  # noqa: F401
