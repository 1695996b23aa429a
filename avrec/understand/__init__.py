"""What avrec understands about an item beyond its vectors: mood and sentiment, captions of
its key frames, and zero-shot tags (``understand`` config section; computed by ``avrec
embed``, stored per item, read by index, recommend, serve and profile).

The per-item record, in the embeddings' ``items.jsonl`` under ``"understand"`` (absent
parts are omitted; every score is a float rounded to 4 places)::

    "understand": {
      "mood": {
        "valence": 0.42,            # [-1, 1]: negative .. positive
        "arousal": -0.31,           # [-1, 1]: calm .. energetic
        "labels": [{"label": "calm", "score": 0.71, "from": "audio"}, ...],   # best first, <= 3
        "from": {"valence": "text+audio", "arousal": "audio"},                 # which modality gave each
        "modalities": {"text": {"valence": 0.5}, "audio": {"valence": 0.3, "arousal": -0.3}, ...}
      },
      "captions": [{"t": 1.0, "text": "a wave breaking on a beach"}, ...],     # frame time in seconds
      "tags": [{"tag": "surf", "score": 0.41, "from": "text"}, ...]            # predicted, best first
    }

Mood labels come from one fixed vocabulary, :data:`MOOD_LABELS`, placed on the
valence/arousal plane (Russell's circumplex), so every modality's estimate maps to labels
the same way and filters (``mood=calm``) mean one thing everywhere. (A text classifier's
labels that have no place on the plane are kept under their own name.)

Where it is computed: :mod:`.mood` (the per-modality mappings, their sources and the fusion
rule), :mod:`.tags` (zero-shot tags and how ``tag_threshold`` applies), :mod:`.captions`
(key frames -> ``caption:`` model), :mod:`.run` (what embed calls). With
``understand.mood_weight > 0`` the embeddings also hold ``mood.npy`` (n, 11): [valence,
arousal, closeness to each of MOOD_LABELS], the fused vector's ``mood`` block.
"""

from __future__ import annotations

# (label, valence, arousal): Russell (1980), "A circumplex model of affect"; positions rounded
MOOD_LABELS: tuple[tuple[str, float, float], ...] = (
    ("happy", 0.8, 0.5),
    ("excited", 0.6, 0.8),
    ("tense", -0.5, 0.8),
    ("angry", -0.7, 0.6),
    ("sad", -0.7, -0.4),
    ("gloomy", -0.5, -0.7),
    ("calm", 0.5, -0.6),
    ("relaxed", 0.7, -0.4),
    ("neutral", 0.0, 0.0),
)
