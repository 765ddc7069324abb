"""HC-STVG reader on the real v1 sample (tests/data/hcstvg_v1) and on v2-keyed / malformed files."""

from __future__ import annotations

import json

import pytest

from spacevllm.data.readers.hcstvg import read_hcstvg
from spacevllm.data.records import read_records, validate_record, write_records
from spacevllm.errors import InputFileError

BOX_COUNTS = {  # SOURCES.md, file order
    "55_vfjywN5CN0Y.mp4": 122,
    "14_wfEOx36N4jA.mp4": 171,
    "27_woC9Vfbn74I.mkv": 134,
    "65_xp67EC-Hvwk.mp4": 93,
    "41_oD_wxyTHJ2I.mp4": 227,
    "41_rk8Xm0EAOWs.mp4": 238,
    "6_wfEOx36N4jA.mp4": 111,
    "184_wEAeql4z1O0.mp4": 131,
    "15_piYxcrMxVPw.mkv": 87,
    "18_phVLLTMzmKk.mp4": 70,
}


@pytest.fixture(scope="module")
def v1_records(real_data):
    return read_hcstvg(real_data / "hcstvg_v1" / "test_sample.json")


def test_v1_order_and_box_counts(v1_records):
    assert [(r.id, len(r.boxes)) for r in v1_records] == list(BOX_COUNTS.items())
    assert all(r.task == "stvg" and r.source == "hcstvg-v1" for r in v1_records)


def test_v1_first_record_values(v1_records):
    r = v1_records[0]
    # raw: st_frame 157, bbox[0] = [194, 0, 240, 359] (x, y, w, h) -> xyxy [194, 0, 434, 359]
    assert r.frame_boxes()[157] == [194.0, 0.0, 434.0, 359.0]
    assert r.frame_boxes()[158] == [190.0, 11.0, 424.0, 360.0]
    assert min(r.frame_boxes()) == 157 and max(r.frame_boxes()) == 157 + 122 - 1
    assert r.start == pytest.approx(6.501935870542281) and r.end == pytest.approx(11.951935870542554)
    assert (r.width, r.height, r.fps, r.duration) == (480, 360, 24.0, 20.0)
    assert r.meta == {"st_frame": 157, "img_num": 480, "version": "v1"}
    assert r.query.startswith("The man in brown clothes pours")
    assert r.video == "55_vfjywN5CN0Y.mp4"


def test_v1_second_record_starts_at_frame_1(v1_records):
    r = v1_records[1]  # st_frame 1, 501 frames
    assert min(r.frame_boxes()) == 1 and r.meta["img_num"] == 501 and r.fps == pytest.approx(501 / 20)


def test_records_pass_schema_and_round_trip(v1_records, tmp_path):
    for i, r in enumerate(v1_records):
        validate_record(r.to_dict(), "mem", i)
    write_records(tmp_path / "hc.jsonl", v1_records)
    back = read_records(tmp_path / "hc.jsonl")
    assert [b.to_dict() for b in back] == [r.to_dict() for r in v1_records]


def test_v2_keys(tmp_path):
    ann = {
        "v2clip.mp4": {
            "bbox": [[10, 20, 30, 40], [11, 21, 30, 40]],
            "st_frame": 5,
            "img_num": 300,
            "st_time": 1.0,
            "ed_time": 2.0,
            "English": "A woman in red walks to the door.",
            "img_size": [360, 640],
        }
    }
    (tmp_path / "v2.json").write_text(json.dumps(ann))
    (r,) = read_hcstvg(tmp_path / "v2.json", video_dir="videos")
    assert (r.width, r.height, r.source, r.query) == (640, 360, "hcstvg-v2", "A woman in red walks to the door.")
    assert r.frame_boxes() == {5: [10.0, 20.0, 40.0, 60.0], 6: [11.0, 21.0, 41.0, 61.0]}
    assert r.video == "videos/v2clip.mp4" and r.fps == 15.0


def _write(tmp_path, obj, text=None):
    p = tmp_path / "ann.json"
    p.write_text(text if text is not None else json.dumps(obj))
    return p


GOOD = {"bbox": [[1, 2, 3, 4]], "st_frame": 3, "img_num": 100, "st_time": 0.1, "ed_time": 0.2, "caption": "x"}
GOOD.update(width=100, height=80)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"bbox": None}, "bbox"),
        ({"bbox": [[1, 2, 3]]}, "bbox[0]"),
        ({"bbox": [[1, 2, -3, 4]]}, "bbox[0]"),
        ({"st_frame": "3"}, "st_frame"),
        ({"img_num": 0}, "img_num"),
        ({"caption": ""}, "caption"),
        ({"ed_time": 0.05}, "ed_time"),
        ({"width": None}, "width"),
    ],
)
def test_malformed_fields_name_file_record_field(tmp_path, change, field):
    ann = {**GOOD, **change}
    ann = {k: v for k, v in ann.items() if v is not None}
    p = _write(tmp_path, {"clip.mp4": ann})
    with pytest.raises(InputFileError) as e:
        read_hcstvg(p)
    assert str(p) in str(e.value) and "clip.mp4" in str(e.value) and repr(field) in str(e.value)


def test_bad_json_and_wrong_top_level(tmp_path):
    with pytest.raises(InputFileError, match="not valid JSON"):
        read_hcstvg(_write(tmp_path, None, text="{"))
    with pytest.raises(InputFileError, match="JSON object"):
        read_hcstvg(_write(tmp_path, [GOOD]))
    with pytest.raises(InputFileError, match="no such file"):
        read_hcstvg(tmp_path / "absent.json")
