"""``spacevllm evaluate stvg`` in-process: --json output, the table, and the error paths (exit 2, no traceback)."""

from __future__ import annotations

import json

import pytest

from spacevllm.cli import main
from spacevllm.data.readers.hcstvg import read_hcstvg
from spacevllm.data.readers.vidstg import read_vidstg

KEYS = {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "gt_vIoU", "n"}


@pytest.fixture(scope="module")
def hc_ann(real_data):
    return real_data / "hcstvg_v1" / "test_sample.json"


@pytest.fixture(scope="module")
def hc_records(hc_ann):
    return read_hcstvg(hc_ann)


def perfect_hc(records, shift=0):
    out = {}
    for r in records:
        fb = r.frame_boxes()
        out[r.id] = {
            "sted": [min(fb) + shift, max(fb) + 1 + shift],
            "boxes": {str(f + shift): b for f, b in fb.items()},
        }
    return out


def write(tmp_path, obj, name="pred.json"):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


def run(capsys, *argv):
    code = main(["evaluate", "stvg", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def hc_args(ann, pred):
    return ["--dataset", "hcstvg", "--annotations", ann, "--predictions", pred]


def test_json_perfect(tmp_path, capsys, hc_ann, hc_records):
    code, out, _ = run(capsys, *hc_args(hc_ann, write(tmp_path, perfect_hc(hc_records))), "--json")
    assert code == 0
    assert json.loads(out) == {"m_tIoU": 1.0, "m_vIoU": 1.0, "vIoU@0.3": 1.0, "vIoU@0.5": 1.0, "gt_vIoU": 1.0, "n": 10}


def test_table_in_percent(tmp_path, capsys, hc_ann, hc_records):
    code, out, _ = run(capsys, *hc_args(hc_ann, write(tmp_path, perfect_hc(hc_records))))
    assert code == 0
    header = next(line for line in out.splitlines() if "m_tIoU" in line).split()
    assert header[1:5] == ["m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5"]
    assert out.splitlines()[-1].split()[1:] == ["100.0"] * 5 + ["10"]


def test_cgstvg_protocol_loses_one_frame_per_video(tmp_path, capsys, hc_ann, hc_records):
    pred = write(tmp_path, perfect_hc(hc_records, shift=-1))  # CG-STVG numbering: st_frame - 1
    code, out, _ = run(capsys, *hc_args(hc_ann, pred), "--protocol", "cgstvg", "--json")
    counts = [len(r.boxes) for r in hc_records]
    expected = sum((n - 1) / n for n in counts) / len(counts)
    s = json.loads(out)
    assert code == 0 and s["m_tIoU"] == pytest.approx(expected) and s["m_vIoU"] == pytest.approx(expected)
    assert s["gt_vIoU"] == 1.0


def test_missing_box_exit_2_names_video_and_frame(tmp_path, capsys, hc_ann, hc_records):
    pred = perfect_hc(hc_records)
    del pred["27_woC9Vfbn74I.mkv"]["boxes"]["204"]  # in GT [159, 293); 30 fps -> 5 fps frames 198, 204, ...
    path = write(tmp_path, pred)
    code, _, err = run(capsys, *hc_args(hc_ann, path), "--json")
    assert code == 2 and "27_woC9Vfbn74I.mkv" in err and "frame 204" in err and str(path) in err
    code, out, _ = run(capsys, *hc_args(hc_ann, path), "--json", "--allow-missing")
    s = json.loads(out)
    assert code == 0 and 0.99 < s["m_vIoU"] < 1.0 and s["n"] == 10


def test_unsampled_frame_without_box_is_fine(tmp_path, capsys, hc_ann, hc_records):
    pred = perfect_hc(hc_records)
    del pred["27_woC9Vfbn74I.mkv"]["boxes"]["201"]  # 30 fps video: frame 201 is not one of the 5 fps frames
    code, out, _ = run(capsys, *hc_args(hc_ann, write(tmp_path, pred)), "--json")
    assert code == 0 and json.loads(out)["m_vIoU"] == 1.0


def test_missing_video_prediction(tmp_path, capsys, hc_ann, hc_records):
    pred = perfect_hc(hc_records)
    del pred["65_xp67EC-Hvwk.mp4"]
    path = write(tmp_path, pred)
    code, _, err = run(capsys, *hc_args(hc_ann, path), "--json")
    assert code == 2 and "65_xp67EC-Hvwk.mp4" in err
    code, out, _ = run(capsys, *hc_args(hc_ann, path), "--json", "--allow-missing")
    s = json.loads(out)
    assert code == 0 and s["n"] == 10 and s["m_tIoU"] == pytest.approx(0.9)


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (lambda p: p["55_vfjywN5CN0Y.mp4"].pop("sted"), ["55_vfjywN5CN0Y.mp4", "'sted'"]),
        (lambda p: p["55_vfjywN5CN0Y.mp4"].update(sted="157-279"), ["55_vfjywN5CN0Y.mp4", "'sted'"]),
        (lambda p: p["55_vfjywN5CN0Y.mp4"]["boxes"].update({"160": [1, 2]}), ["55_vfjywN5CN0Y.mp4", "boxes['160']"]),
        (lambda p: p["55_vfjywN5CN0Y.mp4"]["boxes"].update({"-3": [1, 2, 3, 4]}), ["boxes['-3']"]),
        (lambda p: p.update({"55_vfjywN5CN0Y.mp4": None}), ["55_vfjywN5CN0Y.mp4"]),
    ],
)
def test_malformed_predictions_exit_2(tmp_path, capsys, hc_ann, hc_records, mutate, needles):
    pred = perfect_hc(hc_records)
    mutate(pred)
    path = write(tmp_path, pred)
    code, _, err = run(capsys, *hc_args(hc_ann, path), "--json")
    assert code == 2 and str(path) in err and all(n in err for n in needles), err


def test_bad_json_files_exit_2(tmp_path, capsys, hc_ann, hc_records):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": [1, 2')
    code, _, err = run(capsys, *hc_args(hc_ann, bad))
    assert code == 2 and "bad.json" in err and "not valid JSON" in err
    good = write(tmp_path, perfect_hc(hc_records))
    code, _, err = run(capsys, *hc_args(bad, good))
    assert code == 2 and "bad.json" in err
    code, _, err = run(capsys, *hc_args(tmp_path / "absent.json", good))
    assert code == 2 and "absent.json" in err


def test_malformed_annotation_names_record_and_field(tmp_path, capsys, hc_ann, hc_records):
    raw = json.loads(hc_ann.read_text())
    del raw["41_oD_wxyTHJ2I.mp4"]["bbox"]
    ann = write(tmp_path, raw, "ann.json")
    code, _, err = run(capsys, *hc_args(ann, write(tmp_path, perfect_hc(hc_records))))
    assert code == 2 and "ann.json" in err and "41_oD_wxyTHJ2I.mp4" in err and "'bbox'" in err


def test_hcstvg_rejects_vidstg_flags(tmp_path, capsys, hc_ann, hc_records):
    code, _, err = run(capsys, *hc_args(hc_ann, write(tmp_path, perfect_hc(hc_records))), "--subset-found")
    assert code == 2 and "--subset-found" in err


# --- VidSTG ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vidstg(real_data):
    ann, vidor = real_data / "vidstg" / "test_annotations.json", real_data / "vidor"
    return ann, vidor, read_vidstg(ann, vidor, skip_missing=True)


def vs_args(ann, vidor, pred):
    return ["--dataset", "vidstg", "--annotations", ann, "--vidor-dir", vidor, "--predictions", pred]


def test_vidstg_json_split_by_sentence_type(tmp_path, capsys, vidstg):
    ann, vidor, records = vidstg
    pred = {r.id: {"sted": r.meta["temporal_gt"], "boxes": r.boxes} for r in records}
    pred["9"]["sted"] = [504, 600]  # one interrogative sentence over-long: 57 / 96 in tIoU
    code, out, err = run(capsys, *vs_args(ann, vidor, write(tmp_path, pred)), "--subset-found", "--json")
    s = json.loads(out)
    assert code == 0 and set(s) == {"declarative", "interrogative"}
    assert set(s["declarative"]) == KEYS and s["declarative"]["n"] == 2 and s["interrogative"]["n"] == 3
    assert s["declarative"]["m_tIoU"] == 1.0
    assert s["interrogative"]["m_tIoU"] == pytest.approx((2 + 57 / 96) / 3)
    assert "5 of 11" in err


def test_vidstg_table(tmp_path, capsys, vidstg):
    ann, vidor, records = vidstg
    pred = write(tmp_path, {r.id: {"sted": r.meta["temporal_gt"], "boxes": r.boxes} for r in records})
    code, out, _ = run(capsys, *vs_args(ann, vidor, pred), "--subset-found")
    assert code == 0 and "Declarative Sentences" in out and "Interrogative Sentences" in out
    assert out.splitlines()[4].split()[1:] == ["100.0"] * 8


def test_vidstg_missing_vidor_file_names_video(tmp_path, capsys, vidstg):
    ann, vidor, _ = vidstg
    code, _, err = run(capsys, *vs_args(ann, vidor, write(tmp_path, {})))
    assert code == 2 and "10001787725" in err and "--subset-found" in err


def test_vidstg_needs_vidor_dir(tmp_path, capsys, vidstg):
    ann, _, _ = vidstg
    code, _, err = run(capsys, "--dataset", "vidstg", "--annotations", ann, "--predictions", write(tmp_path, {}))
    assert code == 2 and "--vidor-dir" in err


def test_vidstg_missing_sentence_prediction(tmp_path, capsys, vidstg):
    ann, vidor, records = vidstg
    pred = {r.id: {"sted": r.meta["temporal_gt"], "boxes": r.boxes} for r in records if r.id != "5"}
    code, _, err = run(capsys, *vs_args(ann, vidor, write(tmp_path, pred)), "--subset-found")
    assert code == 2 and "sentence 5" in err and "11566930393" in err


def test_evaluate_without_benchmark_prints_help(capsys):
    assert main(["evaluate"]) == 2
    assert "stvg" in capsys.readouterr().out
