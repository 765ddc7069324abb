"""One rule for inverted numbers in prediction files, in all three evaluators: an interval with start > end, an
``sted`` or box with x2 < x1 / y2 < y1 is a one-line error naming the file, the record and the field (never swapped
for full credit or scored 0); and ``--pred-units normalized`` with pixel-sized boxes warns."""

from __future__ import annotations

import json

from spacevllm.cli import main
from spacevllm.data.readers.hcstvg import read_hcstvg


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _one_line_error(argv, capsys, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_vtg_inverted_interval_is_an_error(tmp_path, capsys):
    ann = _write(tmp_path / "a.txt", "A 24.3 30.4##a person opens a door\n")
    pred = _write(tmp_path / "p.json", {"0": [30.4, 24.3]})
    argv = ["evaluate", "vtg", "--dataset", "charades-sta", "--annotations", str(ann), "--predictions", str(pred)]
    _one_line_error(argv, capsys, "p.json", "record 0", "'prediction'", "start <= end", "[30.4, 24.3]")


def test_stvg_inverted_box_is_an_error(tmp_path, capsys, real_data):
    ann = real_data / "hcstvg_v1" / "test_sample.json"
    record = read_hcstvg(ann)[0]
    boxes = {str(f): list(b) for f, b in record.frame_boxes().items()}
    frame = next(iter(boxes))
    x1, y1, x2, y2 = boxes[frame]
    boxes[frame] = [x2, y1, x1, y2]
    fb = record.frame_boxes()
    pred = _write(tmp_path / "p.json", {record.id: {"sted": [min(fb), max(fb) + 1], "boxes": boxes}})
    argv = ["evaluate", "stvg", "--dataset", "hcstvg", "--annotations", str(ann), "--predictions", str(pred)]
    _one_line_error(argv, capsys, "p.json", f"record {record.id}", f"boxes['{frame}']", "x2 >= x1")


def test_rec_inverted_box_is_an_error_and_normalized_pixels_warn(tmp_path, capsys):
    row = {"image": "a.jpg", "expression": "the dog", "bbox": [0, 0, 50, 25], "width": 100, "height": 50}
    ann = _write(tmp_path / "rec.jsonl", json.dumps(row) + "\n")
    argv = ["evaluate", "rec", "--annotations", str(ann), "--predictions"]
    _one_line_error([*argv, str(_write(tmp_path / "p.json", {"0": [50, 0, 0, 25]}))], capsys, "record 0", "x2 >= x1")
    pixels = _write(tmp_path / "q.json", {"0": [0, 0, 50, 25]})
    assert main([*argv, str(pixels), "--pred-units", "normalized", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["Acc@0.5"] == 0.0
    assert "warning" in captured.err and "--pred-units pixel" in captured.err
    fractions = _write(tmp_path / "r.json", {"0": [0, 0, 0.5, 0.5]})
    assert main([*argv, str(fractions), "--pred-units", "normalized", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["Acc@0.5"] == 1.0 and "warning" not in captured.err
