"""`avrec recommend` (being written)."""

from . import app  # noqa: F401
