"""VidSTG reader: real sentence file + the two real VidOR files (excerpts in tests/data/vidstg, tests/data/vidor)."""

from __future__ import annotations

import json
import shutil

import pytest

from spacevllm.data.readers.vidstg import MissingVidORError, index_vidor, read_vidstg, sentence_count
from spacevllm.data.records import validate_record
from spacevllm.errors import InputFileError

FOUND = {"2793806282", "11566930393"}


@pytest.fixture(scope="module")
def test_file(real_data):
    return real_data / "vidstg" / "test_annotations.json"


@pytest.fixture(scope="module")
def records(real_data, test_file):
    return read_vidstg(test_file, real_data / "vidor", skip_missing=True)


def _tubedetr_numbering(entries):
    """TubeDETR preproc_vidstg.py: a running 0-based counter, questions before captions in each entry."""
    out, n = [], 0
    for e in entries:
        for kind, qtype in (("questions", "interrogative"), ("captions", "declarative")):
            for s in e[kind]:
                out.append((n, e["vid"], qtype, s["description"]))
                n += 1
    return out


def test_numbering_matches_tubedetr(records, test_file):
    expected = [x for x in _tubedetr_numbering(json.loads(test_file.read_text())) if x[1] in FOUND]
    got = [(int(r.id), r.meta["vid"], r.meta["qtype"], r.query) for r in records]
    assert got == [(n, v, q, d.strip()) for n, v, q, d in expected]
    assert len(records) == 5 and records[0].id == "4" and records[-1].id == "10"
    assert sentence_count(test_file) == 11


def test_concrete_sentence(records):
    r = {x.id: x for x in records}["9"]
    assert r.query == "what is in front of the adult in the playground?"
    assert r.meta["qtype"] == "interrogative" and r.meta["target_id"] == 3 and r.meta["vid"] == "2793806282"
    assert r.meta["temporal_gt"] == [504, 561] and r.meta["used_segment"] == [0, 1924]
    assert len(r.boxes) == 561 - 504  # every frame of [504, 561) annotated
    assert r.frame_boxes()[504] == [133.0, 0.0, 204.0, 36.0]  # VidOR tid 3 on frame 504
    assert r.meta["end_box"] == [142.0, 0.0, 193.0, 23.0]  # frame 561, outside the half-open tube
    assert r.start == pytest.approx(504 / 29.96969696969697) and r.end == pytest.approx(561 / 29.96969696969697)
    assert (r.width, r.height, r.video) == (320, 240, "0001/2793806282.mp4")
    assert r.duration == pytest.approx(1925 / 29.96969696969697)


def test_declarative_and_interrogative_are_separate_records(records):
    same_segment = [r for r in records if r.meta["vid"] == "11566930393" and r.meta["temporal_gt"] == [79, 99]]
    assert [r.meta["qtype"] for r in same_segment] == ["interrogative", "declarative"]
    assert same_segment[0].frame_boxes()[79] == [164.0, 0.0, 433.0, 346.0]
    for i, r in enumerate(records):
        validate_record(r.to_dict(), "mem", i)


def test_missing_vidor_file_is_an_error_naming_the_video(real_data, test_file):
    with pytest.raises(MissingVidORError) as e:
        read_vidstg(test_file, real_data / "vidor")
    assert "10001787725" in str(e.value) and e.value.videos == ["10001787725", "7771650716"]


def test_vidor_files_found_recursively(real_data, test_file, tmp_path):
    nested = tmp_path / "annotation" / "validation" / "0001"
    nested.mkdir(parents=True)
    shutil.copy(real_data / "vidor" / "2793806282.json", nested)
    assert set(index_vidor(tmp_path)) == {"2793806282"}
    rs = read_vidstg(test_file, tmp_path, skip_missing=True, id_prefix="test/")
    assert [r.id for r in rs] == ["test/8", "test/9", "test/10"]


def test_val_file_has_no_found_video(real_data):
    assert read_vidstg(real_data / "vidstg" / "val_annotations.json", real_data / "vidor", skip_missing=True) == []


def _entry(**change):
    e = {
        "vid": "2793806282",
        "fps": 29.97,
        "frame_count": 1925,
        "width": 320,
        "height": 240,
        "used_segment": {"begin_fid": 0, "end_fid": 100},
        "temporal_gt": {"begin_fid": 504, "end_fid": 510},
        "questions": [],
        "captions": [{"description": "a dog.", "type": "animal", "target_id": 3}],
    }
    e.update(change)
    return {k: v for k, v in e.items() if v is not None}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"temporal_gt": None}, "temporal_gt"),
        ({"temporal_gt": {"begin_fid": 9, "end_fid": 3}}, "temporal_gt"),
        ({"fps": "30"}, "fps"),
        ({"captions": [{"description": "a dog."}]}, "captions[0]"),
        ({"questions": None}, "questions"),
        ({"captions": [{"description": "a dog.", "target_id": 99}]}, "target_id"),
    ],
)
def test_malformed_entry_names_file_record_field(real_data, tmp_path, change, field):
    p = tmp_path / "ann.json"
    p.write_text(json.dumps([_entry(), _entry(**change)]))
    with pytest.raises(InputFileError) as e:
        read_vidstg(p, real_data / "vidor")
    assert str(p) in str(e.value) and "record 1" in str(e.value) and repr(field) in str(e.value)
