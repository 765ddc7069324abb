"""``spacevllm evaluate vtg`` and ``evaluate rec`` in-process: --json, tables, and the error paths (exit 2)."""

from __future__ import annotations

import json
import os
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.cli import main
from spacevllm.metrics.predictions import parse_rec_box

VTG_KEYS = {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "n"}


def write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def run(capsys, *argv):
    code = main(["evaluate", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def vtg(capsys, ann, pred, *extra, dataset="charades-sta"):
    return run(capsys, "vtg", "--dataset", dataset, "--annotations", ann, "--predictions", pred, *extra)


def rec(capsys, ann, pred, *extra):
    return run(capsys, "rec", "--annotations", ann, "--predictions", pred, *extra)


# --- vtg on the real Charades-STA test list ---------------------------------------------------------------


@pytest.fixture(scope="module")
def charades(real_data):
    return real_data / "charades_sta" / "charades_sta_test.txt"


def _gt_lines(path):
    """Ground truth read independently of the package: (start, end) per line."""
    out = []
    for line in path.read_text().splitlines():
        _, s, e = line.split("##")[0].split()
        out.append((float(s), float(e)))
    return out


def test_real_file_perfect_lists_and_answers(tmp_path, capsys, charades):
    gts = _gt_lines(charades)
    pred = {
        str(i): ([s, e] if i % 2 else f"The event happens from {s:.1f} to {e:.1f} seconds.")
        for i, (s, e) in enumerate(gts)
    }
    code, out, err = vtg(capsys, charades, write(tmp_path / "p.json", pred), "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == {"R1@0.3": 1.0, "R1@0.5": 1.0, "R1@0.7": 1.0, "mIoU": 1.0, "n": 202}


def test_real_file_empty_predictions_are_all_misses(tmp_path, capsys, charades):
    code, out, err = vtg(capsys, charades, write(tmp_path / "p.json", {}), "--json")
    assert code == 0
    assert json.loads(out) == {"R1@0.3": 0.0, "R1@0.5": 0.0, "R1@0.7": 0.0, "mIoU": 0.0, "n": 202}
    assert "202 without a prediction" in err


# --- vtg hand-computed -------------------------------------------------------------------------------------


@pytest.fixture
def small_charades(tmp_path):
    lines = ["A 0 10##a", "A 0 10##b", "B 2 4##c", "B 0 10##d", "C 0 10##e", "C 0 10##f"]
    return write(tmp_path / "small.txt", "\n".join(lines) + "\n")


SMALL_PRED = {
    "0": [0, 5],  # IoU 0.5 exactly
    "1": "from 0.0 to 3.0 seconds",  # IoU 0.3
    "2": "The moment is 4 - 2 s.",  # reversed, swapped: IoU 1
    "3": "I don't know",  # unparsable: miss
    "5": None,  # null: miss; "4" absent: miss
}


def test_vtg_ranked_candidates_use_the_first(tmp_path, capsys, small_charades):
    pred = write(tmp_path / "p.json", {"0": [[0, 10], [50, 60]], "1": [[50, 60], [0, 10]]})
    code, out, _ = vtg(capsys, small_charades, pred, "--json")
    assert code == 0 and json.loads(out)["R1@0.7"] == 1 / 6


def test_vtg_json_hand_computed(tmp_path, capsys, small_charades):
    code, out, err = vtg(capsys, small_charades, write(tmp_path / "p.json", SMALL_PRED), "--json")
    assert code == 0
    got = json.loads(out)
    assert set(got) == VTG_KEYS
    assert got == {"R1@0.3": 3 / 6, "R1@0.5": 2 / 6, "R1@0.7": 1 / 6, "mIoU": pytest.approx(1.8 / 6), "n": 6}
    assert "1 without a prediction, 2 unreadable" in err


def test_vtg_table_in_percent(tmp_path, capsys, small_charades):
    code, out, _ = vtg(capsys, small_charades, write(tmp_path / "p.json", SMALL_PRED))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Charades-STA")
    assert lines[1].split() == ["split", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "n"]
    assert lines[3].split() == ["small.txt", "50.0", "33.3", "16.7", "30.0", "6"]


def test_vtg_unistg_records_by_id_or_line_index(tmp_path, capsys):
    recs = [
        {"id": "a", "task": "vtg", "query": "q", "video": "v.mp4", "start": 0, "end": 10},
        {"id": "b", "task": "rec", "query": "q", "image": "i.jpg", "boxes": {"0": [0, 0, 1, 1]}},
        {"id": "c", "task": "stvg", "query": "q", "video": "v.mp4", "start": 2, "end": 4},
    ]
    ann = write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in recs) + "\n")
    code, out, _ = vtg(capsys, ann, write(tmp_path / "p.json", {"a": [0, 5], "2": [2, 4]}), "--json", dataset="unistg")
    assert code == 0 and json.loads(out) == {"R1@0.3": 1.0, "R1@0.5": 1.0, "R1@0.7": 0.5, "mIoU": 0.75, "n": 2}
    code, _, err = vtg(capsys, ann, write(tmp_path / "p.json", {"a": [0, 5], "0": [0, 5]}), dataset="unistg")
    assert code == 2 and "record 0, field 'key'" in err and "same record as key 'a'" in err
    code, _, err = vtg(capsys, ann, write(tmp_path / "p.json", {"b": [0, 5]}), dataset="unistg")
    assert code == 2 and "record b, field 'key'" in err


def test_vtg_malformed_annotation(tmp_path, capsys):
    ann = write(tmp_path / "bad.txt", "A 0 10##a\nA abc 10##b\n")
    code, out, err = vtg(capsys, ann, write(tmp_path / "p.json", {}))
    assert code == 2 and out == ""
    assert str(ann) in err and "record 1 (line 2)" in err and "field 'start'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("pred", "fragment"),
    [
        ('{"0": [0, 5]', "not valid JSON"),
        ("[[0, 5]]", "expected a JSON object"),
        ({"0": {"start": 0, "end": 5}}, "record 0, field 'prediction'"),
        ({"0": [0, 5, 7]}, "record 0, field 'prediction'"),
        ({"0": [[0, 5, 7]]}, "record 0, field 'prediction'"),
        ({"1": [-1, 5]}, "record 1, field 'prediction'"),
        ({"0": [True, 5]}, "record 0, field 'prediction'"),
        ({"0": 5}, "record 0, field 'prediction'"),
        ({"6": [0, 5]}, "record 6, field 'key'"),
        ({"first": [0, 5]}, "record first, field 'key'"),
    ],
)
def test_vtg_malformed_predictions(tmp_path, capsys, small_charades, pred, fragment):
    p = write(tmp_path / "p.json", pred)
    code, out, err = vtg(capsys, small_charades, p, "--json")
    assert code == 2 and out == ""
    assert err.startswith(f"spacevllm evaluate: error: {p}") and fragment in err


def test_vtg_missing_files(tmp_path, capsys, small_charades):
    code, _, err = vtg(capsys, small_charades, tmp_path / "absent.json")
    assert code == 2 and "absent.json: no such file" in err
    code, _, err = vtg(capsys, tmp_path / "absent.txt", write(tmp_path / "p.json", {}))
    assert code == 2 and "absent.txt: no such file" in err
    code, _, err = vtg(capsys, write(tmp_path / "empty.txt", "\n"), write(tmp_path / "p.json", {}))
    assert code == 2 and "no records to score" in err


# --- rec ---------------------------------------------------------------------------------------------------


@pytest.fixture
def rec_ann(tmp_path):
    objs = [
        {"image": "a.jpg", "expression": "the dog", "bbox": [0, 0, 10, 10], "width": 100, "height": 50},
        {"id": "cat", "image": "b.jpg", "sent": "the cat", "bbox": [10, 10, 20, 20], "width": 100, "height": 50},
        {"image": "c.jpg", "query": "the cup", "bbox": [50, 25, 100, 50], "width": 100, "height": 50},
        {
            "id": "x",
            "task": "rec",
            "query": "the car",
            "image": "d.jpg",
            "boxes": {"0": [0, 0, 40, 40]},
            "width": 80,
            "height": 40,
        },  # fmt: skip
        {"image": "e.jpg", "text": "the bus", "bbox": [0, 0, 10, 10], "width": 100, "height": 50},
    ]
    return write(tmp_path / "rec.jsonl", "\n".join(json.dumps(o) for o in objs) + "\n")


REC_PRED = {
    "0": [0, 0, 10, 5],  # IoU 0.5 exactly: hit
    "cat": "The cat is at [10, 10, 19, 20].",  # IoU 0.9: hit
    "2": "somewhere on the right",  # no box: miss
    "3": [0, 0, 40, 19],  # record "x" by line index, IoU 0.475: miss; "4" absent: miss
}


def test_rec_json_hand_computed(tmp_path, capsys, rec_ann):
    code, out, err = rec(capsys, rec_ann, write(tmp_path / "p.json", REC_PRED), "--json")
    assert code == 0 and json.loads(out) == {"Acc@0.5": 2 / 5, "n": 5}
    assert "1 without a prediction, 1 without a box" in err


def test_rec_table_in_percent(tmp_path, capsys, rec_ann):
    code, out, _ = rec(capsys, rec_ann, write(tmp_path / "p.json", REC_PRED))
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split() == ["split", "Acc@0.5", "n"] and lines[3].split() == ["rec.jsonl", "40.0", "5"]


def test_rec_pred_units(tmp_path, capsys, rec_ann):
    norm = {"0": [0, 0, 0.1, 0.2], "cat": "(0.1, 0.2, 0.2, 0.4)", "2": [0.5, 0.5, 1, 1], "x": [0, 0, 0.5, 1]}
    norm["4"] = [0.5, 0.5, 1, 1]  # miss
    code, out, _ = rec(capsys, rec_ann, write(tmp_path / "p.json", norm), "--pred-units", "normalized", "--json")
    assert code == 0 and json.loads(out) == {"Acc@0.5": 4 / 5, "n": 5}
    k = {key: ([v * 1000 for v in b] if isinstance(b, list) else b) for key, b in norm.items() if key != "cat"}
    code, out, _ = rec(capsys, rec_ann, write(tmp_path / "p.json", k), "--pred-units", "1000", "--json")
    assert code == 0 and json.loads(out) == {"Acc@0.5": 3 / 5, "n": 5}
    ann = write(tmp_path / "nosize.jsonl", json.dumps({"image": "a.jpg", "expression": "x", "bbox": [0, 0, 1, 1]}))
    code, _, err = rec(capsys, ann, write(tmp_path / "p.json", {}), "--pred-units", "1000")
    assert code == 2 and f"{ann}, record 0, field 'width': needed by --pred-units 1000" in err


def test_rec_bbox_format_xywh(tmp_path, capsys):
    ann = write(tmp_path / "xywh.jsonl", json.dumps({"image": "a.jpg", "expression": "x", "bbox": [10, 10, 20, 20]}))
    pred = write(tmp_path / "p.json", {"0": [10, 10, 30, 30]})
    code, out, _ = rec(capsys, ann, pred, "--bbox-format", "xywh", "--json")
    assert code == 0 and json.loads(out) == {"Acc@0.5": 1.0, "n": 1}
    code, out, _ = rec(capsys, ann, pred, "--json")  # read as xyxy [10, 10, 20, 20]: IoU 100 / 400
    assert code == 0 and json.loads(out) == {"Acc@0.5": 0.0, "n": 1}


def test_rec_malformed_annotation(tmp_path, capsys):
    ann = write(tmp_path / "bad.jsonl", '{"image": "a.jpg", "expression": "x", "bbox": [0, 0, 1]}\n')
    code, out, err = rec(capsys, ann, write(tmp_path / "p.json", {}))
    assert code == 2 and out == "" and f"{ann}, record 0, field 'bbox': must be 4 numbers" in err


@pytest.mark.parametrize(
    ("pred", "fragment"),
    [
        ({"0": [0, 0, 10]}, "record 0, field 'prediction'"),
        ({"cat": [10, 0, 0, 10]}, "record cat, field 'prediction': needs x2 >= x1"),
        ({"0": {"bbox": [0, 0, 1, 1]}}, "record 0, field 'prediction'"),
        ({"0": [0, 0, float("nan"), 1]}, "record 0, field 'prediction'"),
        ({"dog": [0, 0, 1, 1]}, "record dog, field 'key'"),
        ("{", "not valid JSON"),
    ],
)
def test_rec_malformed_predictions(tmp_path, capsys, rec_ann, pred, fragment):
    p = write(tmp_path / "p.json", pred)
    code, out, err = rec(capsys, rec_ann, p)
    assert code == 2 and out == "" and err.startswith(f"spacevllm evaluate: error: {p}") and fragment in err


def test_rec_refcoco_pickle_via_cli(tmp_path, capsys):
    folder = tmp_path / "refcoco"
    folder.mkdir()
    refs = [
        {"ref_id": 0, "ann_id": 1, "image_id": 5, "split": "testA", "sentences": [{"sent_id": 10, "sent": "left man"}]},
        {"ref_id": 1, "ann_id": 2, "image_id": 5, "split": "testB", "sentences": [{"sent_id": 11, "sent": "red car"}]},
    ]
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    instances = write(
        folder / "instances.json",
        {"images": [{"id": 5, "width": 64, "height": 48}], "annotations": [
            {"id": 1, "bbox": [0, 0, 10, 10]}, {"id": 2, "bbox": [20, 20, 10, 10]}]},
    )  # fmt: skip
    pred = write(tmp_path / "p.json", {"10": [0, 0, 10, 10], "11": [0, 0, 10, 10]})
    args = ("--instances", instances, "--json")
    code, out, _ = rec(capsys, folder / "refs(unc).p", pred, *args, "--split", "testA")
    assert code == 0 and json.loads(out) == {"Acc@0.5": 1.0, "n": 1}
    code, out, _ = rec(capsys, folder / "refs(unc).p", pred, *args)
    assert code == 0 and json.loads(out) == {"Acc@0.5": 0.5, "n": 2}
    code, _, err = rec(capsys, folder / "refs(unc).p", pred, "--split", "testA")
    assert code == 2 and "needs --instances" in err
    code, _, err = rec(capsys, folder / "refs(unc).p", pred, *args, "--split", "val")
    assert code == 2 and "no refs in split 'val'" in err
    code, _, err = rec(capsys, write(tmp_path / "a.jsonl", "\n"), pred, "--split", "testA")
    assert code == 2 and "--split applies to a RefCOCO refs(*).p file only" in err


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_rec_malicious_pickle_refused_via_cli(tmp_path, capsys):
    marker = tmp_path / "pwned"
    refs = tmp_path / "refs(unc).p"
    refs.write_bytes(pickle.dumps([{"ref_id": 0, "sentences": [_Evil(marker)]}], protocol=2))
    instances = write(tmp_path / "instances.json", {"annotations": []})
    code, out, err = rec(capsys, refs, write(tmp_path / "p.json", {}), "--instances", instances)
    assert code == 2 and out == "" and "refused to load global" in err and str(refs) in err
    assert not marker.exists()


coords = st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False)


@given(
    st.tuples(coords, coords, coords, coords),
    st.sampled_from(["[{}]", "({})", "The box is [{}].", '{{"bbox_2d": [{}]}}']),
)
def test_parse_rec_box_reads_a_box_out_of_text(box, template):
    text = template.format(", ".join(repr(v) for v in box))
    x1, y1, x2, y2 = box
    expected = [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]
    assert parse_rec_box(text, "k", "p.json") == expected
    assert parse_rec_box(text, "k", "p.json", "1000", width=2000, height=500) == pytest.approx(
        [expected[0] * 2, expected[1] / 2, expected[2] * 2, expected[3] / 2]
    )


@given(st.text(alphabet="abc xyz,.[]()-", max_size=30))
def test_parse_rec_box_without_four_numbers_is_a_miss(text):
    assert parse_rec_box(text, "k", "p.json") is None
