"""Generated media for the extract tests: real codecs, tiny sizes, and broken files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

W, H = 160, 120


def frames(seconds: float, fps: int, *, shot_seconds: float = 1.0) -> list[np.ndarray]:
    """RGB frames: a solid colour per shot (red, green, blue, ...) with a moving square."""
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (220, 220, 40)]
    out = []
    for i in range(int(round(seconds * fps))):
        c = colours[int(i / fps / shot_seconds) % len(colours)]
        img = np.empty((H, W, 3), np.uint8)
        img[:] = c
        x = (i * 4) % (W - 20)
        img[50:70, x : x + 20] = 255
        out.append(img)
    return out


def write_cv2(path: Path, seconds: float = 3.0, fps: int = 10, fourcc: str = "mp4v") -> Path:
    """mp4 (MPEG-4 part 2) or avi (fourcc MJPG) through cv2.VideoWriter; no audio."""
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert vw.isOpened(), f"cv2.VideoWriter cannot write {path}"
    for img in frames(seconds, fps):
        vw.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def tone(seconds: float, sr: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, seconds: float = 2.0, sr: int = 22050, freq: float = 440.0, amp: float = 0.3) -> Path:
    """wav / flac / ogg (vorbis) through soundfile, stereo."""
    import soundfile as sf

    y = tone(seconds, sr, freq, amp)
    sf.write(str(path), np.stack([y, y], axis=1), sr)
    return path


def write_av(path: Path, seconds: float = 3.0, fps: int = 10, *, audio: bool = True, freq: float = 440.0) -> Path:
    """H.264 + AAC mp4 (or mkv) muxed with PyAV."""
    import av

    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=fps)
    v.width, v.height, v.pix_fmt = W, H, "yuv420p"
    a = None
    if audio:
        a = c.add_stream("aac", rate=44100)
        a.layout = "stereo"
    for img in frames(seconds, fps):
        for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    if a is not None:
        y = tone(seconds, 44100, freq)
        for s in range(0, len(y), 1024):
            blk = np.ascontiguousarray(np.stack([y[s : s + 1024]] * 2))
            fr = av.AudioFrame.from_ndarray(blk, format="fltp", layout="stereo")
            fr.sample_rate, fr.pts = 44100, s
            for p in a.encode(fr):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def random_bytes(path: Path, n: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def dangling(path: Path) -> Path:
    os.symlink(path.parent / "does-not-exist.mp4", path)
    return path


def write_av_audio(path: Path, codec: str, fmt: str, seconds: float = 1.5, sr: int = 48000, freq: float = 440.0) -> Path:
    """Audio in a container through PyAV: mp3 (libmp3lame/mp3), m4a (aac/mp4), opus (libopus/ogg),
    aac (aac/adts)."""
    import av

    c = av.open(str(path), "w", format=fmt)
    a = c.add_stream(codec, rate=sr)
    a.layout = "stereo"
    fmt_in = "fltp"
    y = tone(seconds, sr, freq)
    n = a.codec_context.frame_size or 1024
    for s in range(0, len(y), n):
        blk = y[s : s + n]
        if len(blk) < n:
            blk = np.pad(blk, (0, n - len(blk)))
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.stack([blk, blk])), format=fmt_in, layout="stereo")
        fr.sample_rate, fr.pts = sr, s
        for p in a.encode(fr):
            c.mux(p)
    for p in a.encode():
        c.mux(p)
    c.close()
    return path
