"""avrec: audio/video content recommendation toolkit.

Stages (each a plain function; the CLI in ``avrec.cli`` is a thin wrapper):
extract -> embed -> train -> index -> recommend, and evaluate.
"""

__version__ = "0.1.0"
