"""Frames sampled by time, converted to small RGB only when sampled.

The PyAV path decodes packets in order (multi-threaded) and converts a frame to RGB, at
analysis size, only when its timestamp reaches the next sampling time, so the cost is
the decoder's alone; ``keyframes=True`` asks the decoder to skip every non-key frame
(``skip_frame="NONKEY"``), which is several times faster again. Memory is one decoded
frame plus what the consumer keeps. Timestamps come from the stream, so variable frame
rate files are sampled by real time. The OpenCV path (``grab()`` every frame,
``retrieve()`` only the sampled ones) is the fallback for files PyAV cannot open.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np

from .probe import MediaError, _one_line, open_input

Frame = tuple[float, np.ndarray]  # (seconds from the start, (h, w, 3) uint8 RGB)
SegFrame = tuple[float, np.ndarray, bool]  # + True when the frame starts a new segment (after a seek)


def analysis_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(w, h) scaled so the shorter side is ``short_side`` (even sizes, aspect kept)."""
    if width <= 0 or height <= 0:
        return short_side, short_side
    s = short_side / min(width, height)
    w = max(2, int(round(width * s / 2)) * 2)
    h = max(2, int(round(height * s / 2)) * 2)
    return w, h


def _rotate(img: np.ndarray, degrees_ccw: int) -> np.ndarray:
    k = int(round(degrees_ccw / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


class _Sampler:
    """Decides which timestamps are taken: a grid of 1/fps seconds from the first frame."""

    def __init__(self, fps: float):
        self.step = 1.0 / fps
        self.next = -math.inf

    def take(self, t: float) -> bool:
        if t + 1e-6 < self.next:
            return False
        # next sample on the grid after t, so drift does not accumulate
        self.next = (math.floor(t / self.step + 1e-6) + 1) * self.step
        return True


class _Converter:
    """Frame -> small RGB with display rotation; the target size is fixed by the first frame."""

    def __init__(self, short_side: int):
        self.short_side = short_side
        self.size: tuple[int, int] | None = None

    def __call__(self, frame) -> np.ndarray:
        rot = int(getattr(frame, "rotation", 0) or 0)
        if self.size is None:
            w, h = (frame.height, frame.width) if rot % 180 else (frame.width, frame.height)
            size = analysis_size(w, h, self.short_side)
            self.size = (size[1], size[0]) if rot % 180 else size  # scale before rotating
        img = frame.to_ndarray(format="rgb24", width=self.size[0], height=self.size[1], interpolation="AREA")
        return _rotate(img, rot)


# Key frames only: no later frame is decoded from them here, so skipping the in-loop deblocking
# filter and allowing non-bit-exact shortcuts cannot accumulate error. 10-15% faster on 720p
# H.264; the thumbnails differ from a full decode's by 0.1-1.3 grey levels on average (more on
# low-bitrate files, whose block edges the filter would have smoothed), which moves the visual
# features by at most ~0.02 (measured on ../shared/data/media).
_KEYFRAME_OPTIONS = {"skip_loop_filter": "all", "flags2": "+fast"}


def _open_video(path: str | Path, threads: int, options: dict[str, str] | None = None):
    import av

    try:
        container = open_input(path)
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open video: {_one_line(e)}") from None
    from .probe import _is_cover

    stream = next((s for s in container.streams.video if not _is_cover(s)), None)
    if stream is None:
        container.close()
        raise MediaError("no video stream")
    stream.thread_type = "AUTO"  # frame + slice threads
    if options:
        stream.codec_context.options = dict(options)  # read when the decoder opens, on first use
    if threads:
        stream.codec_context.thread_count = threads
    return container, stream


def _start(stream) -> float:
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def iter_frames(
    path: str | Path,
    *,
    fps: float,
    short_side: int,
    keyframes: bool = False,
    skip_nonref: bool = False,
    threads: int = 0,
    max_seconds: float | None = None,
) -> Iterator[Frame]:
    """Yield (t, rgb) at about ``fps`` frames per second (every key frame up to that rate
    with ``keyframes``); rgb has its shorter side ``short_side``, display rotation applied.

    skip_nonref: let the decoder drop frames no other frame refers to (most B-frames):
    always safe for the picture, 1.3-1.6x faster on typical H.264, and samples land within
    a few frames of their grid time; meant for sampling well below the source frame rate.

    Raises MediaError when nothing can be decoded; a decoding error after some frames
    ends the iteration (the caller sees how far it got from the last timestamp).
    """
    import av

    container, stream = _open_video(path, threads, _KEYFRAME_OPTIONS if keyframes else None)
    try:
        if keyframes:
            stream.codec_context.skip_frame = "NONKEY"
        elif skip_nonref:
            stream.codec_context.skip_frame = "NONREF"
        tb = float(stream.time_base) if stream.time_base else 0.0
        start = _start(stream)
        rate = float(stream.average_rate or 25)
        sampler = _Sampler(fps)
        convert = _Converter(short_side)
        n_decoded = 0
        try:
            for packet in container.demux(stream):
                if keyframes and not packet.is_keyframe and packet.size:
                    continue  # never reaches the decoder
                for frame in packet.decode():
                    n_decoded += 1
                    t = frame.pts * tb - start if frame.pts is not None and tb else (n_decoded - 1) / rate
                    t = max(t, 0.0)
                    if max_seconds is not None and t > max_seconds:
                        return
                    if sampler.take(t):  # a skipped frame costs decoding only, never conversion
                        yield t, convert(frame)
        except av.error.FFmpegError as e:
            if n_decoded == 0:
                raise MediaError(f"cannot decode video: {_one_line(e)}") from None
            # truncated or corrupt tail: keep what was decoded
        if n_decoded == 0:
            raise MediaError("video stream has no decodable frames")
    finally:
        container.close()


def iter_frames_seek(
    path: str | Path,
    *,
    times: list[float],
    pair_dt: float,
    short_side: int,
    threads: int = 0,
) -> Iterator[SegFrame]:
    """For each time t: seek to the key frame before t, decode forward (no conversion) and
    yield the first frames at or after t and t + pair_dt, so motion and cuts are still
    measured between frames ``pair_dt`` apart. Cost: a fraction of a GOP per point, not
    the whole video. Yields (t, rgb, new_segment)."""
    import av

    container, stream = _open_video(path, threads)
    try:
        tb = float(stream.time_base) if stream.time_base else 0.0
        if not tb:
            raise MediaError("video stream has no time base; cannot seek")
        start = _start(stream)
        convert = _Converter(short_side)
        got = 0
        last_t = -1.0
        for target in times:
            if target <= last_t:
                continue
            try:
                container.seek(int((target + start) / tb), stream=stream, backward=True, any_frame=False)
                wanted = [target, target + pair_dt]
                first = True
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    t = frame.pts * tb - start
                    if t + 1e-6 < wanted[0]:
                        continue
                    yield t, convert(frame), first
                    got += 1
                    first = False
                    last_t = t
                    wanted.pop(0)
                    if not wanted:
                        break
                    if t + 1e-6 >= wanted[0]:  # sparse frames: this one covers the pair point too
                        break
            except av.error.FFmpegError as e:
                if got == 0:
                    raise MediaError(f"cannot decode video: {_one_line(e)}") from None
                break  # corrupt beyond this point: keep what was decoded
        if got == 0:
            raise MediaError("video stream has no decodable frames")
    finally:
        container.close()


def iter_frames_cv(path: str | Path, *, fps: float, short_side: int, max_seconds: float | None = None) -> Iterator[Frame]:
    """OpenCV fallback: ``grab()`` every frame, ``retrieve()`` (decode to BGR) only sampled ones."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise MediaError("cannot open video (OpenCV)")
    try:
        sampler = _Sampler(fps)
        rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
        n = 0
        size = None
        while cap.grab():
            n += 1
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if t <= 0 and n > 1:
                t = (n - 1) / rate
            if max_seconds is not None and t > max_seconds:
                break
            if not sampler.take(t):
                continue
            ok, bgr = cap.retrieve()
            if not ok:
                continue
            if size is None:
                size = analysis_size(bgr.shape[1], bgr.shape[0], short_side)
            small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            yield t, cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        if n == 0:
            raise MediaError("video stream has no decodable frames (OpenCV)")
    finally:
        cap.release()


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) centre square of an image whose shorter side is >= size (resized if not)."""
    h, w = img.shape[:2]
    if min(h, w) != size:
        import cv2

        s = size / min(h, w)
        img = cv2.resize(img, (max(size, round(w * s)), max(size, round(h * s))), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y : y + size, x : x + size])
