import numpy as np
import pytest

from avrec.features.visual import VisualAccumulator, video_feature_names


def _solid(rgb, h=120, w=160):
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rgb
    return img


def _acc(**kw):
    args = dict(max_frames=8, thumb_size=64, scene_threshold=0.4, duration=None, fps=1.0)
    args.update(kw)
    return VisualAccumulator(**args)


def _get(v, name):
    return v[video_feature_names().index(name)]


def test_dimension_names_and_empty():
    acc = _acc()
    assert acc.features() is None
    frames, times = acc.thumbnails()
    assert frames.shape == (0, 64, 64, 3) and times.shape == (0,)
    acc.add(0.0, _solid((200, 10, 10)))
    v = acc.features()
    assert v.shape == (len(video_feature_names()),) and np.isfinite(v).all()


def test_colour_brightness_and_static_motion():
    acc = _acc()
    for t in range(5):
        acc.add(float(t), _solid((230, 20, 20)))
    v = acc.features()
    assert _get(v, "hue_hist_0") > 0.9  # red
    assert _get(v, "grid00_r") > 0.85 and _get(v, "grid11_b") < 0.15
    assert _get(v, "motion_mean") == 0.0 and _get(v, "cuts_per_minute") == 0.0
    dark = _acc()
    dark.add(0.0, _solid((20, 5, 5)))
    assert _get(dark.features(), "brightness_mean") < _get(v, "brightness_mean")
    assert _get(v, "log_aspect") == pytest.approx(np.log(160 / 120))


def test_shot_cuts_are_counted_and_pick_the_thumbnails():
    # 1 frame per second for 20 s: a new colour every 5 s -> 3 cuts in 19 s of pairs
    colours = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20)]
    acc = _acc(max_frames=4, duration=20.0)
    for t in range(20):
        acc.add(float(t), _solid(colours[t // 5]))
    v = acc.features()
    assert _get(v, "cut_fraction") == pytest.approx(3 / 19)
    assert _get(v, "cuts_per_minute") == pytest.approx(3 / 19 * 60)
    frames, times = acc.thumbnails()
    # four 5-second bins; bins 2-4 start with a cut, which is chosen over the bin centre
    assert list(times) == [2.0, 5.0, 10.0, 15.0]
    assert frames.shape == (4, 64, 64, 3)
    assert [int(np.argmax(f[32, 32])) for f in frames] == [0, 1, 2, 0]


def test_thumbnails_stay_bounded_without_a_duration():
    acc = _acc(max_frames=5)
    for t in range(100):
        acc.add(float(t), _solid((t * 2, 100, 100)))
    frames, times = acc.thumbnails()
    assert 3 <= len(frames) <= 5
    assert times[0] < 25 and times[-1] > 70  # spread over the whole video


def test_motion_and_seek_segments():
    a = _solid((100, 100, 100))
    b = a.copy()
    b[:, :80] = 250
    acc = _acc()
    acc.add(0.0, a)
    acc.add(1.0, b)
    assert _get(acc.features(), "motion_mean") > 0.2
    seg = _acc()
    seg.add(0.0, a)
    seg.add(50.0, b, new_segment=True)  # after a seek: not compared
    assert _get(seg.features(), "motion_mean") == 0.0
