"""``avrec serve``: the HTTP server (:mod:`.app`, FastAPI under uvicorn), its served state
(:mod:`.state`: the index, live fold-in, swaps) and the event store (:mod:`.events`, SQLite).

Importing this package is light: the event store needs only the standard library, so
``avrec train`` and ``avrec events`` read it without loading the web stack.
"""

from .events import EventStore, default_store_path

__all__ = ["EventStore", "default_store_path"]
