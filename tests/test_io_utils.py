"""``spacevllm.io_utils``: atomic writers and the output-path check every command runs before its work."""

from __future__ import annotations

import pytest

from spacevllm.errors import SpaceVLLMError
from spacevllm.io_utils import atomic_dir, atomic_path, check_output, write_text_atomic


def test_check_output_accepts_new_and_existing_paths_of_the_right_kind(tmp_path):
    (tmp_path / "f.json").write_text("{}")
    (tmp_path / "d").mkdir()
    assert check_output(tmp_path / "f.json", "file") == tmp_path / "f.json"
    assert check_output(tmp_path / "d", "folder") == tmp_path / "d"
    assert check_output(tmp_path / "new" / "deeper" / "x.jsonl", "file") == tmp_path / "new" / "deeper" / "x.jsonl"
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("d", "file", "is a folder"),
        ("f.json", "folder", "is not a folder"),
        ("f.json/x.jsonl", "file", "f.json is not a folder"),
        ("f.json/a/b", "folder", "f.json is not a folder"),
    ],
)
def test_check_output_names_the_path_and_the_reason(tmp_path, name, kind, message):
    (tmp_path / "f.json").write_text("{}")
    (tmp_path / "d").mkdir()
    with pytest.raises(SpaceVLLMError, match=message) as info:
        check_output(tmp_path / name, kind)
    assert str(tmp_path / name) in str(info.value)


def test_atomic_writers_refuse_the_wrong_kind_and_leave_it_alone(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("keep")
    (tmp_path / "f").write_text("keep")
    with pytest.raises(SpaceVLLMError), atomic_path(tmp_path / "d"):
        pass
    with pytest.raises(SpaceVLLMError), atomic_dir(tmp_path / "f"):
        pass
    assert (tmp_path / "d" / "keep.txt").read_text() == "keep" and (tmp_path / "f").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]  # no temporary left behind


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]
