import numpy as np
import pytest

import media_kit as kit
from avrec.media.audio import load_audio
from avrec.media.probe import MediaError, probe
from avrec.media.video import iter_frames, iter_frames_cv, iter_frames_seek


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "mp4": kit.write_cv2(d / "a.mp4", seconds=3, fps=10),
        "avi": kit.write_cv2(d / "b.avi", seconds=3, fps=10, fourcc="MJPG"),
        "h264": kit.write_av(d / "c.mp4", seconds=3, fps=10),
        "wav": kit.write_audio(d / "d.wav", seconds=2, sr=22050),
        "flac": kit.write_audio(d / "e.flac", seconds=2, sr=22050),
        "ogg": kit.write_audio(d / "f.ogg", seconds=2, sr=22050),
        "dir": d,
    }


def test_probe(clips):
    v = probe(clips["h264"])
    assert v.has_video and v.has_audio and v.width == kit.W and v.height == kit.H
    assert v.duration == pytest.approx(3.0, abs=0.2)
    a = probe(clips["flac"])
    assert a.has_audio and not a.has_video and a.duration == pytest.approx(2.0, abs=0.05)
    assert not probe(clips["mp4"]).has_audio


@pytest.mark.parametrize("name", ["mp4", "avi", "h264"])
def test_frames_sampled_by_time(clips, name):
    got = list(iter_frames(clips[name], fps=2, short_side=64))
    times = [t for t, _ in got]
    assert len(got) == 6 and times == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=0.06)
    img = got[0][1]
    assert img.dtype == np.uint8 and img.shape == (64, 86, 3)  # short side 64, 4:3 kept
    # first shot is red: the decoded colours are right (RGB, not BGR)
    r, g, b = img[:40].reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 80 and b < 80


def test_skipping_unreferenced_frames_keeps_sampling_by_time(clips):
    got = [t for t, _ in iter_frames(clips["h264"], fps=2, short_side=32, skip_nonref=True)]
    assert len(got) == 6 and got == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5], abs=0.35)


def test_keyframes_decode_a_subset(clips):
    every = list(iter_frames(clips["h264"], fps=10, short_side=32))
    keys = list(iter_frames(clips["h264"], fps=10, short_side=32, keyframes=True))
    assert 1 <= len(keys) < len(every)


def test_seek_sampling_gives_pairs(clips):
    got = list(iter_frames_seek(clips["h264"], times=[0.5, 2.0], pair_dt=0.5, short_side=32))
    assert [round(t, 1) for t, _, _ in got] == [0.5, 1.0, 2.0, 2.5]
    assert [new for _, _, new in got] == [True, False, True, False]


def test_opencv_fallback(clips):
    got = list(iter_frames_cv(clips["mp4"], fps=2, short_side=64))
    assert len(got) == 6 and got[0][1].shape[0] == 64 and got[0][1].shape[2] == 3


@pytest.mark.parametrize("name", ["wav", "flac", "ogg", "h264"])
def test_audio_resampled_to_mono(clips, name):
    a = load_audio(clips[name], sr=16000, max_seconds=30)
    secs = 3.0 if name == "h264" else 2.0
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert len(a.samples) == pytest.approx(secs * 16000, rel=0.03)
    # a 440 Hz tone stays a 440 Hz tone
    spec = np.abs(np.fft.rfft(a.samples[4000:12000]))
    assert np.fft.rfftfreq(8000, 1 / 16000)[spec.argmax()] == pytest.approx(440, abs=4)


def test_audio_window_is_bounded(clips):
    a = load_audio(clips["flac"], sr=8000, max_seconds=0.5)
    assert len(a.samples) == 4000 and a.duration == pytest.approx(2.0, abs=0.05)


def test_broken_inputs_raise_media_error_with_a_reason(clips):
    d = clips["dir"]
    cases = {
        kit.empty(d / "empty.mp4"): "empty file",
        kit.random_bytes(d / "noise.mkv"): "not a media file",
        kit.truncate(clips["mp4"], d / "half.mp4"): "corrupt",
        kit.dangling(d / "gone.mp4"): "broken symlink",
    }
    for path, reason in cases.items():
        with pytest.raises(MediaError, match=reason):
            probe(path)


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    import av
    from fractions import Fraction

    path = tmp_path / "vfr.mkv"
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = kit.W, kit.H, "yuv420p"
    s.codec_context.time_base = Fraction(1, 1000)
    ms = [0, 100, 200, 1500, 1600, 3000, 3050]  # bursts and gaps, in milliseconds
    for k, (t, img) in enumerate(zip(ms, kit.frames(len(ms), 1))):
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts, f.time_base = t, Fraction(1, 1000)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    times = [round(t, 2) for t, _ in iter_frames(path, fps=1, short_side=32)]
    assert times == [0.0, 1.5, 3.0]


class _RotatedFrame:
    """A stand-in for av.VideoFrame with a display matrix (phones record landscape + rotation)."""

    width, height = 160, 120

    def __init__(self, rotation):
        self.rotation = rotation

    def to_ndarray(self, format, width, height, interpolation):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, : width // 2] = 255  # left half white, as stored
        return img


def test_display_rotation_is_applied_after_scaling():
    from avrec.media.video import _Converter

    upright = _Converter(60)(_RotatedFrame(0))
    assert upright.shape == (60, 80, 3) and upright[:, :40].min() == 255
    # rotation -90 (clockwise for display): stored left half ends up on top; portrait shape
    turned = _Converter(60)(_RotatedFrame(-90))
    assert turned.shape == (80, 60, 3)
    assert turned[:40].min() == 255 and turned[40:].max() == 0


def _phone_clip(path, rotation: int, seconds: int = 3, fps: int = 10):
    """A landscape H.264 clip (left half red, right half blue) whose container says: rotate by
    ``rotation`` degrees counter-clockwise for display, as phones record portrait video."""
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = 128, 64, "yuv420p"
    if not hasattr(s, "set_display_rotation"):
        c.close()
        pytest.skip("this PyAV cannot write a display matrix (needs av >= 17)")
    s.set_display_rotation(rotation)
    img = np.zeros((64, 128, 3), np.uint8)
    img[:, :64] = (255, 0, 0)
    img[:, 64:] = (0, 0, 255)
    for _ in range(seconds * fps):
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def _red(px):
    return px[0] > 200 and px[2] < 60


def _blue(px):
    return px[2] > 200 and px[0] < 60


@pytest.mark.parametrize("rotation, top_is_red", [(-90, True), (90, False)])
@pytest.mark.parametrize("mode", ["scan", "seek", "keyframes"])
def test_rotated_files_decode_upright(tmp_path, rotation, top_is_red, mode):
    path = _phone_clip(tmp_path / f"phone{rotation}.mp4", rotation)
    if mode == "seek":
        frames = [img for _, img, _ in iter_frames_seek(path, times=[0.5, 2.0], pair_dt=0.5, short_side=32)]
    else:
        frames = [img for _, img in iter_frames(path, fps=1, short_side=32, keyframes=mode == "keyframes")]
    assert frames
    for img in frames:
        assert img.shape == (64, 32, 3)  # portrait, as displayed
        top, bottom = img[4, 16], img[-5, 16]
        assert (_red(top) and _blue(bottom)) if top_is_red else (_blue(top) and _red(bottom))


def test_upside_down_file_and_extract_keeps_it_upright(tmp_path):
    from avrec.config import Config
    from avrec.extract import extract
    from avrec.features.store import FeatureStore

    media = tmp_path / "media"
    media.mkdir()
    _phone_clip(media / "flipped.mp4", 180)
    _phone_clip(media / "portrait.mp4", -90)
    cfg = Config()
    cfg.extract.thumb_size = 32
    extract([str(media)], tmp_path / "features", cfg)
    store = FeatureStore.open(tmp_path / "features")
    by_id = {it["item_id"]: it for it in store.ok_items}
    flipped = store.frames(by_id["flipped"])[0]  # 180: stored left (red) is shown on the right
    assert _blue(flipped[16, 3]) and _red(flipped[16, -4])
    portrait = store.frames(by_id["portrait"])[0]  # square crop of the upright portrait frame
    assert _red(portrait[3, 16]) and _blue(portrait[-4, 16])


@pytest.mark.parametrize("codec, fmt, layout", [("pcm_s16le", "s16", "stereo"), ("flac", "s16", "mono"),
                                                 ("aac", "fltp", "stereo")])
def test_container_audio_any_sample_format_keeps_pitch_and_level(tmp_path, codec, fmt, layout):
    """Planar float goes straight to numpy; other formats (packed int PCM, FLAC in Matroska) pass
    a format converter first. Either way: mono, the right rate, the same pitch and level."""
    import av

    path = tmp_path / f"tone-{codec}.mka"
    c = av.open(str(path), "w", format="matroska")
    s = c.add_stream(codec, rate=44100)
    s.layout = layout
    ch = 2 if layout == "stereo" else 1
    y = kit.tone(2.0, 44100, 440.0, 0.3)
    n = s.codec_context.frame_size or 1024
    for i in range(0, len(y), n):
        blk = y[i : i + n]
        if len(blk) < n:
            blk = np.pad(blk, (0, n - len(blk)))
        if fmt == "s16":
            data = np.round(blk * 32767).astype(np.int16)
            data = np.repeat(data, ch)[None] if ch > 1 else data[None]  # packed: L R L R ...
        else:
            data = np.stack([blk] * ch).astype(np.float32)
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
        fr.sample_rate, fr.pts = 44100, i
        for p in s.encode(fr):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    a = load_audio(path, sr=16000, max_seconds=30)
    assert a.samples.dtype == np.float32 and len(a.samples) == pytest.approx(32000, rel=0.03)
    mid = a.samples[4000:28000]
    spec = np.abs(np.fft.rfft(mid))
    assert np.fft.rfftfreq(len(mid), 1 / 16000)[spec.argmax()] == pytest.approx(440, abs=2)
    # identical channels average to the tone itself: 0.3 peak, RMS 0.3 / sqrt(2)
    assert np.sqrt(np.mean(mid ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_a_stream_whose_channel_count_changes_stays_mono_at_its_level():
    # some broadcasts switch from stereo to 5.1 and back mid-stream; what came before is folded
    # to mono, and every later frame is averaged over its own channels
    import av

    from avrec.media.audio import _Planar

    def frame(channels, value, n=1024):
        layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
        x = np.full((channels, n), value, np.float32)
        x[0] += 0.1  # channels differ: the mean is not any one of them
        return av.AudioFrame.from_ndarray(x, format="fltp", layout=layout)

    acc = _Planar()
    for ch, v in ((2, 0.2), (2, 0.2), (6, -0.3), (1, 0.5), (2, 0.2)):
        acc.add(frame(ch, v))
    y = acc.mono()
    assert acc.samples == len(y) == 5 * 1024
    want = np.repeat([0.25, 0.25, -0.3 + 0.1 / 6, 0.6, 0.25], 1024).astype(np.float32)
    np.testing.assert_allclose(y, want, atol=1e-6)
