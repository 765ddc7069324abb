"""DiDeMo and TACoS readers: hand-built files in the official layouts, consensus, malformed entries."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.data.readers.didemo import consensus_pair, read_didemo
from spacevllm.data.readers.tacos import read_tacos
from spacevllm.data.records import read_records, write_records
from spacevllm.errors import InputFileError

DIDEMO = [
    {
        "annotation_id": 4002,
        "video": "94584@N00_5543826345_5c4ab8ad0e.avi",
        "description": "a girl jumps ",
        "times": [[2, 2], [2, 3], [2, 2], [1, 2]],
        "num_segments": 6,
        "download_link": "x",
    },
    {
        "annotation_id": 17,
        "video": "v2.mov",
        "description": "the dog runs away",
        "times": [[0, 1], [0, 1], [4, 5], [4, 5]],
    },
    {"annotation_id": 18, "video": "v2.mov", "description": "the camera pans", "times": [[5, 5]]},
]
TACOS = {
    "s13-d21.avi": {
        "num_frames": 6234,
        "fps": 29.4,
        "timestamps": [[86, 518], [540, 540], [6000, 7000]],
        "sentences": ["The person takes out a cutting board.", "skipped", "She washes the knife."],
    },
    "s14-d26.avi": {"num_frames": 2940, "fps": 29.4, "timestamps": [[0, 294]], "sentences": ["He gets a plate."]},
}


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_didemo_segments_to_seconds_with_mode_consensus(tmp_path):
    records = read_didemo(_write(tmp_path, "train_data.json", DIDEMO), videos_dir="videos")
    assert [(r.id, r.start, r.end) for r in records] == [("4002", 10.0, 15.0), ("17", 0.0, 10.0), ("18", 25.0, 30.0)]
    r = records[0]
    assert (r.task, r.query, r.video, r.duration, r.source) == (
        "vtg",
        "a girl jumps",
        "videos/94584@N00_5543826345_5c4ab8ad0e.avi",
        None,
        "didemo",
    )
    assert r.meta == {
        "vid": "94584@N00_5543826345_5c4ab8ad0e.avi",
        "annotation_id": 4002,
        "times": [[2, 2], [2, 3], [2, 2], [1, 2]],
        "index": 0,
    }
    write_records(tmp_path / "d.jsonl", records)
    assert read_records(tmp_path / "d.jsonl") == records


def test_didemo_median_consensus_and_durations_clip(tmp_path):
    path = _write(tmp_path, "d.json", DIDEMO)
    median = read_didemo(path, consensus="median", durations={"94584@N00_5543826345_5c4ab8ad0e": 40.0, "v2.mov": 27})
    assert [(r.start, r.end, r.duration) for r in median] == [(10.0, 15.0, 40.0), (0.0, 10.0, 27.0), (25.0, 27.0, 27.0)]
    with pytest.raises(InputFileError, match=r"record 17 \(index 1\), field 'video'.*no duration"):
        read_didemo(path, durations={"94584@N00_5543826345_5c4ab8ad0e.avi": 30})


def test_consensus_tie_goes_to_the_pair_closest_to_all():
    assert consensus_pair([(0, 1), (0, 1), (4, 5), (4, 5)]) == (0, 1)  # equal distance -> earliest
    assert consensus_pair([(1, 1), (2, 2), (3, 3)]) == (2, 2)  # all once -> the medoid
    assert consensus_pair([(1, 1), (2, 2), (2, 2), (3, 3)]) == (2, 2)


@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)).map(lambda p: (min(p), max(p))), min_size=1, max_size=6)
)
def test_consensus_is_a_valid_pair(pairs):
    for how in ("mode", "median"):
        s, e = consensus_pair(pairs, how)
        assert 0 <= s <= e <= 5
    assert consensus_pair(pairs, "mode") in pairs


@pytest.mark.parametrize(
    "moment, field",
    [
        ({"video": "v", "description": "d", "times": [[3, 2]]}, "times"),
        ({"video": "v", "description": "d", "times": [[0, 6]]}, "times"),
        ({"video": "v", "description": "d", "times": []}, "times"),
        ({"video": "v", "description": "d", "times": [[0.5, 1]]}, "times"),
        ({"video": "v", "description": " ", "times": [[0, 1]]}, "description"),
        ({"description": "d", "times": [[0, 1]]}, "video"),
    ],
)
def test_didemo_malformed_names_file_record_field(tmp_path, moment, field):
    path = _write(tmp_path, "bad.json", [DIDEMO[0], {"annotation_id": 9, **moment}])
    with pytest.raises(InputFileError, match=rf"bad.json, record 9 \(index 1\), field '{field}'"):
        read_didemo(path)


def test_didemo_not_a_list(tmp_path):
    with pytest.raises(InputFileError, match="expected a JSON list"):
        read_didemo(_write(tmp_path, "bad.json", {"a": 1}))


def test_tacos_frames_to_seconds_skips_empty_and_clips(tmp_path):
    records = read_tacos(_write(tmp_path, "train.json", TACOS), videos_dir="/data/tacos")
    assert [r.id for r in records] == ["s13-d21.avi#0", "s13-d21.avi#2", "s14-d26.avi#0"]
    r = records[0]
    assert r.start == pytest.approx(86 / 29.4) and r.end == pytest.approx(518 / 29.4)
    assert (r.task, r.video, r.fps, r.source) == ("vtg", "/data/tacos/s13-d21.avi", 29.4, "tacos")
    assert r.duration == pytest.approx(6234 / 29.4)
    assert records[1].end == pytest.approx(6234 / 29.4)  # 7000 frames clipped to the video
    assert records[1].meta == {"vid": "s13-d21.avi", "sentence": 2, "timestamp": [6000, 7000]}
    assert records[2].start == 0.0 and records[2].end == pytest.approx(10.0)
    kept = read_tacos(_write(tmp_path, "t.json", TACOS), skip_empty=False)
    assert [r.id for r in kept][:3] == ["s13-d21.avi#0", "s13-d21.avi#1", "s13-d21.avi#2"]
    write_records(tmp_path / "t.jsonl", records)
    assert read_records(tmp_path / "t.jsonl") == records


def test_tacos_missing_fps_and_seconds_unit(tmp_path):
    data = {"v.avi": {"num_frames": 300, "timestamps": [[1.5, 4.0]], "sentences": ["x"]}}
    path = _write(tmp_path, "t.json", data)
    with pytest.raises(InputFileError, match=r"record v.avi, field 'fps'.*29.4"):
        read_tacos(path)
    (r,) = read_tacos(path, fps=30.0, unit="seconds")
    assert (r.start, r.end, r.duration) == (1.5, 4.0, 10.0)


@pytest.mark.parametrize(
    "entry, record, field",
    [
        ({"num_frames": 0, "fps": 29.4, "timestamps": [], "sentences": []}, "v.avi", "num_frames"),
        ({"num_frames": 10, "fps": 29.4, "timestamps": [[0, 5]], "sentences": []}, "v.avi", "sentences"),
        ({"num_frames": 10, "fps": 29.4, "timestamps": [[0, "5"]], "sentences": ["x"]}, "v.avi#0", "timestamps"),
        (
            {"num_frames": 10, "fps": 29.4, "timestamps": [[0, 5], [1, 3]], "sentences": ["x", ""]},
            "v.avi#1",
            "sentences",
        ),
        ({"num_frames": 10, "fps": 29.4, "timestamps": {"a": 1}, "sentences": []}, "v.avi", "timestamps"),
    ],
)
def test_tacos_malformed_names_file_record_field(tmp_path, entry, record, field):
    path = _write(tmp_path, "bad.json", {"v.avi": entry})
    with pytest.raises(InputFileError, match=rf"bad.json, record {record}, field '{field}'"):
        read_tacos(path)
