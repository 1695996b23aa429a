import io
import os
from pathlib import Path

import pytest

from avrec.errors import InputError
from avrec.media.discover import discover


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_item_ids_are_relative_paths_without_extension(tmp_path):
    root = tmp_path / "media"
    _touch(root / "a.mp4")
    _touch(root / "sub" / "deep" / "b.WAV")
    _touch(root / "notes.pdf")  # not media: ignored in a folder
    _touch(root / ".hidden.mp4")
    _touch(root / ".cache" / "c.mp4")
    _touch(root / "a.srt")  # a sidecar, not an item
    got = {m.item_id: m.kind for m in discover([root])}
    assert got == {"a": "video", "sub/deep/b": "audio"}


def test_non_recursive_takes_only_the_top_folder(tmp_path):
    _touch(tmp_path / "a.mp3")
    _touch(tmp_path / "sub" / "b.mp3")
    assert [m.item_id for m in discover([tmp_path], recursive=False)] == ["a"]


def test_same_stem_twice_keeps_both_told_apart_by_extension(tmp_path):
    _touch(tmp_path / "clip.mp4")
    _touch(tmp_path / "clip.wav")
    assert sorted(m.item_id for m in discover([tmp_path])) == ["clip.mp4", "clip.wav"]


def test_stdin_list_and_explicit_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = _touch(tmp_path / "x" / "one.mp4")
    b = _touch(tmp_path / "two.ogg")
    stream = io.StringIO(f"./x/one.mp4\n\n{b}\n")
    got = [m.item_id for m in discover(["-"], stdin=stream)]
    assert got == ["x/one", "two"]
    # the same file named twice counts once
    assert len(discover([str(a), str(a)])) == 1


def test_missing_input_is_a_usage_error_but_a_dangling_link_is_an_item(tmp_path):
    with pytest.raises(InputError, match="not found"):
        discover([tmp_path / "nope"])
    link = tmp_path / "gone.mp4"
    os.symlink(tmp_path / "target.mp4", link)
    assert [m.item_id for m in discover([tmp_path])] == ["gone"]
    assert [m.item_id for m in discover([link])] == ["gone"]
