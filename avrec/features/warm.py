"""Imported once by the extract workers' fork server, before it forks any worker.

librosa loads its submodules lazily: the first ``audio_features`` call imports scipy.signal
and scipy.stats and loads numba's cached kernels, about 2 s on a small machine. Paying it
here, in the process every worker is forked from, makes it once per run instead of once per
worker, and keeps it out of the first item's time limit.
"""

from __future__ import annotations

import numpy as np

from .audio import audio_features

audio_features(np.random.default_rng(0).normal(size=8192).astype(np.float32) * 0.1, sr=16000, n_mels=16)
