"""Mono PCM at a fixed rate from any audio or video file, read in bounded windows.

Containers (video files, m4a, aac, opus, and anything soundfile rejects) are decoded with
PyAV; plain audio files (wav, flac, ogg, mp3) are read with soundfile block by block. Both
are averaged to mono and resampled once with soxr. Only the first ``max_seconds`` are
decoded, so memory is bounded whatever the length of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .probe import MediaError, _one_line, open_input

SOUNDFILE_EXTS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3"})
_BLOCK = 1 << 16


@dataclass
class Audio:
    samples: np.ndarray  # (t,) float32 mono in [-1, 1] at ``sr``
    sr: int
    duration: float | None  # seconds of the whole stream (not only what was decoded)


def load_audio(path: str | Path, *, sr: int, max_seconds: float) -> Audio:
    """Decode up to ``max_seconds`` of mono audio at ``sr``; MediaError if there is none."""
    p = Path(path)
    if p.suffix.lower() in SOUNDFILE_EXTS:
        try:
            return _load_soundfile(p, sr=sr, max_seconds=max_seconds)
        except MediaError:
            raise
        except Exception:  # noqa: BLE001 - libsndfile cannot read it: let FFmpeg try
            pass
    return _load_av(p, sr=sr, max_seconds=max_seconds)


def _load_soundfile(p: Path, *, sr: int, max_seconds: float) -> Audio:
    import soundfile as sf

    with sf.SoundFile(str(p)) as f:
        src = int(f.samplerate)
        total = f.frames / src if f.frames and f.frames > 0 else None
        want = int(max_seconds * src)
        parts, got = [], 0
        while got < want:
            block = f.read(min(_BLOCK, want - got), dtype="float32", always_2d=True)
            if not len(block):
                break
            parts.append(block.mean(axis=1))
            got += len(block)
    if not parts:
        raise MediaError("audio stream is empty")
    y = np.concatenate(parts)
    return Audio(samples=resample(y, src, sr), sr=sr, duration=total)


def resample(y: np.ndarray, src: int, dst: int) -> np.ndarray:
    """(t,) float32 at ``src`` Hz -> (t * dst / src,) float32, anti-aliased (soxr, HQ).

    The one resampler of the project: extract uses it on decoded audio, the encoders on
    stored PCM before their feature extractors.
    """
    y = np.asarray(y, dtype=np.float32)
    if src == dst or len(y) == 0:
        return y
    import soxr

    return soxr.resample(np.ascontiguousarray(y), int(src), int(dst), quality="HQ").astype(np.float32)


class _Planar:
    """Planar float32 frames appended as raw bytes, one buffer per channel, averaged to mono
    at the end: a minute of AAC is ~2,800 frames, and an array per frame per channel costs
    about as much as decoding them. A change in channel count folds what came before to mono."""

    def __init__(self) -> None:
        self.chans: list[bytearray] = []
        self.folded = False
        self.samples = 0

    def add(self, frame) -> None:
        n = frame.samples
        if not n:
            return
        planes = frame.planes
        if not self.chans:
            self.chans = [bytearray() for _ in planes]
        if not self.folded and len(planes) != len(self.chans):
            self.chans = [bytearray(self.mono().tobytes())]
            self.folded = True
        if self.folded:
            x = np.mean([np.frombuffer(pl, np.float32, n) for pl in planes], axis=0, dtype=np.float32)
            self.chans[0] += x.tobytes()
        else:
            for buf, pl in zip(self.chans, planes):
                buf += memoryview(pl)[: 4 * n]  # a plane's buffer may be padded past its samples
        self.samples += n

    def mono(self) -> np.ndarray:
        """(samples,) float32: the mean of the channels."""
        if not self.chans:
            return np.zeros(0, np.float32)
        y = np.frombuffer(self.chans[0], np.float32).copy()
        for buf in self.chans[1:]:
            y += np.frombuffer(buf, np.float32)
        if len(self.chans) > 1:
            y *= np.float32(1.0 / len(self.chans))
        return y


def _load_av(p: Path, *, sr: int, max_seconds: float) -> Audio:
    import av

    try:
        container = open_input(p)
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open audio: {_one_line(e)}") from None
    try:
        if not container.streams.audio:
            raise MediaError("no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        # Decoded planar float frames (AAC, MP3, Vorbis, Opus: most of what FFmpeg decodes) are
        # kept at their own rate and resampled once at the end with soxr: thousands of small
        # libswresample calls per minute cost more than the decoding. Other sample formats go
        # through a format-only converter first. Channels are averaged here, not downmixed by
        # libswresample, which mixes at -3 dB per channel (identical L/R would come out 1.41x
        # louder than soundfile's mean).
        convert = None
        rate = 0
        acc = _Planar()
        decoded = 0
        want = 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if not rate:
                    rate = int(frame.sample_rate)
                    want = int(max_seconds * rate)
                if frame.format.name != "fltp" or int(frame.sample_rate) != rate:
                    convert = convert or av.AudioResampler(format="fltp", rate=rate)
                    for f in convert.resample(frame):
                        acc.add(f)
                else:
                    acc.add(frame)
                if acc.samples >= want:
                    break
            else:
                if convert is not None:
                    for f in convert.resample(None):  # the converter's delay line
                        acc.add(f)
        except av.error.FFmpegError as e:
            if decoded == 0:
                raise MediaError(f"cannot decode audio: {_one_line(e)}") from None
            # corrupt or truncated tail: keep what was decoded
        if not acc.samples:
            raise MediaError("audio stream has no decodable samples")
        y = acc.mono()[:want]
        y = resample(y, rate, sr)
        return Audio(samples=y, sr=sr, duration=duration)
    finally:
        container.close()
