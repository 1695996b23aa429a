"""What a media file holds: streams, duration, size, rotation (PyAV, soundfile fallback)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class MediaError(Exception):
    """A file that cannot be read as media; the message is one line for the failed row."""


@dataclass
class MediaInfo:
    duration: float | None  # seconds; None when the container does not say
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0  # average frame rate (variable-rate files: the mean)
    video_duration: float | None = None  # the video stream's own length, when the container says
    rotation: int = 0  # from the legacy 'rotate' tag only; decoders read each frame's display matrix
    video_codec: str = ""
    audio_codec: str = ""
    sample_rate: int = 0
    container: str = ""


def check_readable(path: str | Path) -> None:
    """Fail fast with a clear reason before handing a file to a decoder."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise MediaError(f"broken symlink (target {os.readlink(p)} does not exist)")
    if not p.exists():
        raise MediaError("file not found")
    if not p.is_file():
        raise MediaError("not a regular file")
    if p.stat().st_size == 0:
        raise MediaError("empty file (0 bytes)")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except PermissionError:
        raise MediaError("permission denied (file is not readable)") from None
    except OSError as e:
        raise MediaError(f"cannot read file: {e.strerror}") from None


def _stream_rotation(stream) -> int:
    # PyAV exposes the display matrix on decoded frames (VideoFrame.rotation), which is what
    # iter_frames applies; here only the legacy metadata tag is read, without decoding
    tag = (stream.metadata or {}).get("rotate")
    try:
        return int(tag) % 360 if tag else 0
    except ValueError:
        return 0


def _is_cover(stream) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):  # older PyAV: no Disposition flags
        return "attached_pic" in str(getattr(stream, "disposition", "")).lower()


# avformat_find_stream_info decodes the first frames of every stream to fill in what the
# container does not say (the pixel format and the like): ~18 ms per open of a 720p H.264
# file, and an item opens its file up to three times (probe, video, audio). Nothing here needs
# those fields (the decoders report them on the first frame), and the decoders PyAV opens
# afterwards are fresh ones, so the probing decoders are told to skip every frame.
_OPEN_OPTIONS = {"skip_frame": "all"}


def open_input(path: str | Path):
    """av.open for reading, without decoding anything while probing the streams."""
    import av

    return av.open(str(path), metadata_errors="ignore", options=_OPEN_OPTIONS)


def probe(path: str | Path) -> MediaInfo:
    """Open the container with PyAV and describe it; MediaError if it is not media."""
    import av

    check_readable(path)
    try:
        with open_input(path) as c:
            # cover art in an mp3/m4a/ogg is a one-picture "video" stream: not video
            vs = next((s for s in c.streams.video if s.codec_context is not None and not _is_cover(s)), None)
            as_ = c.streams.audio[0] if c.streams.audio else None
            if vs is None and as_ is None:
                raise MediaError("no audio or video stream in the file")
            duration = None
            if c.duration is not None and c.duration > 0:
                duration = c.duration / 1_000_000
            else:
                durs = [float(s.duration * s.time_base) for s in (vs, as_) if s is not None and s.duration and s.time_base]
                duration = max(durs) if durs else None
            info = MediaInfo(duration=duration, has_video=vs is not None, has_audio=as_ is not None,
                             container=c.format.name if c.format else "")
            if vs is not None:
                info.width, info.height = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
                rate = vs.average_rate or vs.guessed_rate
                info.fps = float(rate) if rate else 0.0
                info.rotation = _stream_rotation(vs)
                info.video_codec = vs.codec_context.name
                if vs.duration and vs.time_base:
                    info.video_duration = float(vs.duration * vs.time_base)
            if as_ is not None:
                info.audio_codec = as_.codec_context.name
                info.sample_rate = int(as_.codec_context.sample_rate or 0)
            return info
    except MediaError:
        raise
    except av.error.InvalidDataError:
        raise MediaError("not a media file, or corrupt (no decodable container header)") from None
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open media: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return (msg[0] if msg else type(e).__name__)[:300]
