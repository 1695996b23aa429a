"""`avrec index` (being written)."""

from . import app  # noqa: F401
