"""Builtin visual features and keyframe choice, computed frame by frame with OpenCV.

:class:`VisualAccumulator` takes the sampled frames of one video in time order and keeps
only running sums plus at most ``max_frames`` thumbnails, so memory does not grow with
the length of the video. Features (:func:`video_feature_names`): HSV histograms, a 2x2
grid of mean colours, brightness / saturation / contrast / colourfulness, edge density,
motion between consecutive samples, and the shot-cut rate (Bhattacharyya distance of
HSV histograms above ``scene_threshold``). The cut detector also picks the thumbnails:
the timeline is cut into ``max_frames`` equal bins and each bin keeps its strongest
shot-start frame, else the frame nearest the bin's centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

H_BINS, S_BINS, V_BINS = 16, 8, 8
ANALYSIS_SHORT_SIDE = 112  # statistics are computed on a small copy: cheap and resolution-independent


def video_feature_names() -> list[str]:
    names = [f"hue_hist_{i}" for i in range(H_BINS)] + [f"sat_hist_{i}" for i in range(S_BINS)]
    names += [f"val_hist_{i}" for i in range(V_BINS)]
    names += [f"grid{r}{c}_{ch}" for r in range(2) for c in range(2) for ch in "rgb"]
    names += ["brightness_mean", "brightness_std", "saturation_mean", "saturation_std", "contrast_mean",
              "colourfulness_mean", "edge_density_mean", "edge_density_std", "motion_mean", "motion_std",
              "motion_max", "cuts_per_minute", "cut_fraction", "log_aspect"]
    return names


@dataclass
class _Candidate:
    t: float
    cut: float  # histogram distance to the previous sample if it is a cut, else 0
    thumb: np.ndarray


class VisualAccumulator:
    """Streaming visual statistics and thumbnail choice for one video."""

    def __init__(self, *, max_frames: int, thumb_size: int, scene_threshold: float,
                 duration: float | None, fps: float):
        self.max_frames = max(1, max_frames)
        self.thumb_size = thumb_size
        self.threshold = scene_threshold
        self.width = max(1.0 / fps, (duration or 0.0) / self.max_frames)  # bin width in seconds
        self.bins: dict[int, _Candidate] = {}
        self.n = 0
        self.sums: dict[str, float] = {}
        self.hist_sum = np.zeros(H_BINS + S_BINS + V_BINS, np.float64)
        self.grid_sum = np.zeros(12, np.float64)
        self.motion: list[float] = []
        self.pairs = 0
        self.pair_seconds = 0.0  # time spanned by compared pairs: the denominator of the cut rate
        self.cuts = 0
        self.aspect = 1.0
        self._prev_t = 0.0
        self._prev_gray: np.ndarray | None = None
        self._prev_hist: np.ndarray | None = None
        self._vals: dict[str, list[float]] = {k: [] for k in ("bright", "sat", "contrast", "colour", "edge")}

    def add(self, t: float, rgb: np.ndarray, new_segment: bool = False) -> None:
        """One sampled frame: (h, w, 3) uint8 RGB, short side >= thumb_size, at time t.

        new_segment: the frame follows a seek, so it is not compared with the previous one.
        """
        import cv2

        h, w = rgb.shape[:2]
        self.aspect = w / h
        s = ANALYSIS_SHORT_SIDE / min(h, w)
        small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        hh = cv2.calcHist([hsv], [0], None, [H_BINS], [0, 180]).ravel()
        sh = cv2.calcHist([hsv], [1], None, [S_BINS], [0, 256]).ravel()
        vh = cv2.calcHist([hsv], [2], None, [V_BINS], [0, 256]).ravel()
        npx = float(hsv.shape[0] * hsv.shape[1])
        self.hist_sum += np.concatenate([hh, sh, vh]) / npx
        gh, gw = small.shape[0] // 2, small.shape[1] // 2
        cells = [small[:gh, :gw], small[:gh, gw:], small[gh:, :gw], small[gh:, gw:]]
        self.grid_sum += np.concatenate([c.reshape(-1, 3).mean(axis=0) for c in cells]) / 255.0
        f = small.astype(np.float32)
        rg = f[..., 0] - f[..., 1]
        yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
        colour = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
        edges = cv2.Canny(gray, 100, 200)
        self._vals["bright"].append(hsv[..., 2].mean() / 255.0)
        self._vals["sat"].append(hsv[..., 1].mean() / 255.0)
        self._vals["contrast"].append(gray.std() / 255.0)
        self._vals["colour"].append(colour / 255.0)
        self._vals["edge"].append(float((edges > 0).mean()))
        # shot cuts: colour histogram distance to the previous sample
        joint = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256])
        cv2.normalize(joint, joint, alpha=1.0, norm_type=cv2.NORM_L1)
        cut = 0.0
        if self._prev_hist is not None and not new_segment:
            d = float(cv2.compareHist(self._prev_hist, joint, cv2.HISTCMP_BHATTACHARYYA))
            self.pairs += 1
            self.pair_seconds += max(t - self._prev_t, 0.0)
            if d > self.threshold:
                self.cuts += 1
                cut = d
            self.motion.append(float(cv2.absdiff(gray, self._prev_gray).mean()) / 255.0)
        self._prev_hist, self._prev_gray, self._prev_t = joint, gray, t
        self.n += 1
        self._offer(t, cut, rgb)

    def _key(self, c: _Candidate) -> tuple[float, float]:
        centre = (math.floor(c.t / self.width) + 0.5) * self.width
        return (c.cut, -abs(c.t - centre))

    def _offer(self, t: float, cut: float, rgb: np.ndarray) -> None:
        from ..media.video import centre_crop

        b = int(t // self.width)
        cur = self.bins.get(b)
        cand = _Candidate(t=t, cut=cut, thumb=rgb)  # cropped only if kept
        if cur is not None and self._key(cur) >= self._key(cand):
            return
        cand.thumb = centre_crop(rgb, self.thumb_size)
        self.bins[b] = cand
        while len(self.bins) > self.max_frames:  # unknown or wrong duration: widen the bins
            self.width *= 2
            merged: dict[int, _Candidate] = {}
            for c in self.bins.values():
                nb = int(c.t // self.width)
                if nb not in merged or self._key(c) > self._key(merged[nb]):
                    merged[nb] = c
            self.bins = merged

    def thumbnails(self) -> tuple[np.ndarray, np.ndarray]:
        """(f, S, S, 3) uint8 thumbnails and (f,) float32 times, in time order."""
        keep = sorted(self.bins.values(), key=lambda c: c.t)
        s = self.thumb_size
        if not keep:
            return np.zeros((0, s, s, 3), np.uint8), np.zeros(0, np.float32)
        return np.stack([c.thumb for c in keep]), np.array([c.t for c in keep], np.float32)

    def features(self) -> np.ndarray | None:
        """(len(video_feature_names()),) float32, or None if no frame was added."""
        if self.n == 0:
            return None
        v = {k: np.asarray(x, np.float64) for k, x in self._vals.items()}
        m = np.asarray(self.motion) if self.motion else np.zeros(1)
        cpm = self.cuts / (self.pair_seconds / 60.0) if self.pair_seconds > 0 else 0.0
        out = np.concatenate([
            self.hist_sum / self.n,
            self.grid_sum / self.n,
            [v["bright"].mean(), v["bright"].std(), v["sat"].mean(), v["sat"].std(), v["contrast"].mean(),
             v["colour"].mean(), v["edge"].mean(), v["edge"].std(), m.mean(), m.std(), m.max(),
             cpm, self.cuts / self.pairs if self.pairs else 0.0, math.log(self.aspect)],
        ]).astype(np.float32)
        return np.nan_to_num(out)
