"""`avrec models` (being written)."""

from . import app  # noqa: F401
