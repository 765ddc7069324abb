"""Re-create the excerpts in this folder from full copies of the public files (README.md here: sources).

    python tests/data/excerpt.py /path/to/shared/data

Charades-STA and VidSTG excerpts keep whole lines / whole JSON entries, unchanged; the VidOR excerpts keep every
key and the length of ``trajectories`` but only the boxes the VidSTG excerpt's sentences need (their target
objects on the frames of their ``temporal_gt``, end frame included); every other frame's list is emptied and
``relation_instances`` is emptied. The HC-STVG file is copied whole (it is already a 10-record excerpt).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHARADES_LINES = list(range(1, 201)) + [2199, 3720]  # 1-based line numbers of charades_sta_test.txt
VIDSTG_TEST_ENTRIES = [0, 1, 794, 913, 4555]  # 0-based positions in test_annotations.json
VIDSTG_VAL_ENTRIES = [0, 1]


def main(shared: Path) -> None:
    (HERE / "hcstvg_v1").mkdir(exist_ok=True)
    shutil.copyfile(shared / "hcstvg_v1" / "test_sample.json", HERE / "hcstvg_v1" / "test_sample.json")
    lines = (shared / "charades_sta" / "charades_sta_test.txt").read_text(encoding="ascii").splitlines()
    (HERE / "charades_sta").mkdir(exist_ok=True)
    excerpt = "".join(lines[n - 1] + "\n" for n in CHARADES_LINES)
    (HERE / "charades_sta" / "charades_sta_test.txt").write_text(excerpt, encoding="ascii")
    (HERE / "vidstg").mkdir(exist_ok=True)
    test = json.loads((shared / "vidstg" / "test_annotations.json").read_text(encoding="utf-8"))
    entries = [test[i] for i in VIDSTG_TEST_ENTRIES]
    _write(HERE / "vidstg" / "test_annotations.json", entries)
    val = json.loads((shared / "vidstg" / "val_annotations.json").read_text(encoding="utf-8"))
    _write(HERE / "vidstg" / "val_annotations.json", [val[i] for i in VIDSTG_VAL_ENTRIES])
    (HERE / "vidor").mkdir(exist_ok=True)
    for vidor in sorted((shared / "vidor").glob("*.json")):
        _write(HERE / "vidor" / vidor.name, _vidor_excerpt(json.loads(vidor.read_text(encoding="utf-8")), entries))


def _vidor_excerpt(data: dict, entries: list[dict]) -> dict:
    """``data`` with only the boxes of the entries' target objects on their temporal_gt frames (end included)."""
    keep: dict[int, set[int]] = {}
    for e in entries:
        if e["vid"] != data["video_id"]:
            continue
        frames = range(e["temporal_gt"]["begin_fid"], e["temporal_gt"]["end_fid"] + 1)
        for s in e["questions"] + e["captions"]:
            for f in frames:
                keep.setdefault(f, set()).add(s["target_id"])
    trajectories = [[b for b in boxes if b["tid"] in keep.get(f, ())] for f, boxes in enumerate(data["trajectories"])]
    return {**data, "trajectories": trajectories, "relation_instances": []}


def _write(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
