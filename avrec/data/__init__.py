"""Interactions loading, id maps and splits."""

from .idmap import IdMap
from .interactions import Interactions, LoadReport, from_arrays, load_interactions
from .splits import PROTOCOLS, Split, cold_item_split, leave_last_split, make_split, random_split, temporal_split, write_split

__all__ = [
    "IdMap", "Interactions", "LoadReport", "from_arrays", "load_interactions", "PROTOCOLS", "Split",
    "cold_item_split", "leave_last_split", "make_split", "random_split", "temporal_split", "write_split",
]
