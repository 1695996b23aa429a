"""`avrec extract` (being written)."""

from . import app  # noqa: F401
