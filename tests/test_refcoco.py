"""RefCOCO-family reader (restricted unpickler, COCO instances, splits) and the REC jsonl reader."""

from __future__ import annotations

import collections
import json
import os
import pickle

import pytest

from spacevllm.data.readers.refcoco import load_plain_pickle, read_rec_jsonl, read_refcoco
from spacevllm.errors import InputFileError, SpaceVLLMError

REFS = [
    {
        "ref_id": 0,
        "ann_id": 101,
        "image_id": 581857,
        "split": "train",
        "category_id": 1,
        "file_name": "COCO_train2014_000000581857_101.jpg",
        "sent_ids": [0, 1],
        "sentences": [
            {"sent_id": 0, "sent": "man on the left", "raw": "Man on the left.", "tokens": ["man", "on"]},
            {"sent_id": 1, "sent": "", "raw": "Guy in blue", "tokens": []},
        ],
    },
    {
        "ref_id": 1,
        "ann_id": 102,
        "image_id": 581857,
        "split": "testA",
        "category_id": 1,
        "sentences": [{"sent_id": 7, "sent": "woman right", "raw": "woman right", "tokens": ["woman", "right"]}],
    },
    {
        "ref_id": 2,
        "ann_id": 103,
        "image_id": 9,
        "split": "testB",
        "category_id": 3,
        "sentences": [{"sent_id": 9, "sent": "red car", "raw": "red car", "tokens": ["red", "car"]}],
    },
]
INSTANCES = {
    "images": [{"id": 581857, "width": 640, "height": 427}, {"id": 9, "width": 500, "height": 375}],
    "annotations": [
        {"id": 101, "image_id": 581857, "bbox": [10.5, 20.0, 100.0, 50.25], "category_id": 1},
        {"id": 102, "image_id": 581857, "bbox": [300, 40, 120, 300], "category_id": 1},
        {"id": 103, "image_id": 9, "bbox": [0, 0, 50, 30], "category_id": 3},
    ],
    "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
}


def write_refcoco(root, refs=REFS, protocol=2, dataset="refcoco+", split_by="unc"):
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    refs_path = folder / f"refs({split_by}).p"
    refs_path.write_bytes(pickle.dumps(refs, protocol=protocol))
    instances = folder / "instances.json"
    instances.write_text(json.dumps(INSTANCES))
    return refs_path, instances


class Evil:
    """Pickles to a call of os.system: loading it with plain pickle would run the command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- restricted unpickler ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_data_loads(tmp_path, protocol):
    p = tmp_path / "plain.p"
    data = {"a": [1, 2.5, None, True], "b": ("x", {"y": -3}), "c": "caf\u00e9", 7: [2**70, -0.0, False]}
    if protocol >= 3:
        data["bytes"] = b"\x00\xff"  # protocol 2 pickles Python-3 bytes via a global (_codecs.encode): refused
    p.write_bytes(pickle.dumps(data, protocol=protocol))
    assert load_plain_pickle(p) == data


def test_python2_str_is_decoded(tmp_path):
    # protocol 2 as Python 2 wrote it: SHORT_BINSTRING (8-bit str) opcodes inside a list
    p = tmp_path / "py2.p"
    p.write_bytes(b"\x80\x02]q\x00(U\x05testAq\x01U\x02\xc3\xa9q\x02e.")
    assert load_plain_pickle(p) == ["testA", "\u00e9"]  # UTF-8 bytes -> str
    p.write_bytes(b"\x80\x02U\x01\xe9.")
    assert load_plain_pickle(p) == "\u00e9"  # not UTF-8: Latin-1


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    p = tmp_path / "refs(unc).p"
    p.write_bytes(pickle.dumps([{"ref_id": 0, "x": Evil(marker)}], protocol=protocol))
    with pytest.raises(SpaceVLLMError, match=r"refused to load global (os|posix|nt)\.system") as e:
        load_plain_pickle(p)
    assert str(e.value).startswith(str(p))
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj",
    [{1, 2}, b"ab", bytearray(b"ab"), collections.OrderedDict(a=1), Exception("x")],
    ids=["set", "py3-bytes", "bytearray", "od", "exc"],
)
def test_any_global_is_refused_at_protocol_2(tmp_path, obj):
    p = tmp_path / "g.p"
    p.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(InputFileError, match="refused to load global"):
        load_plain_pickle(p)


def test_truncated_and_missing_pickles(tmp_path):
    p = tmp_path / "cut.p"
    p.write_bytes(pickle.dumps(REFS, protocol=2)[:50])
    with pytest.raises(InputFileError, match="not a readable pickle|invalid pickle"):
        load_plain_pickle(p)
    with pytest.raises(InputFileError, match="no such file"):
        load_plain_pickle(tmp_path / "absent.p")


# --- RefCOCO family --------------------------------------------------------------------------------------


def test_read_refcoco_all_splits(tmp_path):
    refs, instances = write_refcoco(tmp_path)
    records = read_refcoco(refs, instances, images_dir="coco/train2014")
    assert [r.id for r in records] == ["0", "1", "7", "9"]
    r = records[0]
    assert (r.task, r.query, r.width, r.height, r.source) == ("rec", "man on the left", 640, 427, "refcoco+")
    assert r.image == "coco/train2014/COCO_train2014_000000581857.jpg"
    assert r.boxes == {"0": [10.5, 20.0, 110.5, 70.25]}  # xywh -> xyxy, no +1
    assert r.meta == {
        "ref_id": 0,
        "ann_id": 101,
        "image_id": 581857,
        "category_id": 1,
        "split": "train",
        "sent_id": 0,
    }
    assert records[1].query == "Guy in blue"  # empty "sent" falls back to "raw"
    assert (
        records[3].boxes == {"0": [0.0, 0.0, 50.0, 30.0]}
        and records[3].image == "coco/train2014/COCO_train2014_000000000009.jpg"
    )


def test_read_refcoco_splits(tmp_path):
    refs, instances = write_refcoco(tmp_path, dataset="refcoco")
    assert [r.id for r in read_refcoco(refs, instances, split="testA")] == ["7"]
    assert [r.id for r in read_refcoco(refs, instances, split="test")] == ["7", "9"]
    assert read_refcoco(refs, instances, split="train")[0].source == "refcoco"
    assert read_refcoco(refs, instances, split="train", dataset="refcocog")[0].source == "refcocog"
    with pytest.raises(
        SpaceVLLMError, match=r"no refs in split 'val'; the file has splits \['testA', 'testB', 'train'\]"
    ):
        read_refcoco(refs, instances, split="val")


def test_read_refcoco_malformed(tmp_path):
    bad = [dict(REFS[0], ann_id=999)]
    refs, instances = write_refcoco(tmp_path, refs=bad)
    with pytest.raises(InputFileError, match=r"record ref_id 0, field 'ann_id': ann_id 999 is not in"):
        read_refcoco(refs, instances)
    refs, instances = write_refcoco(tmp_path, refs=[{k: v for k, v in REFS[0].items() if k != "image_id"}])
    with pytest.raises(InputFileError, match=r"record ref_id 0, field 'image_id': missing required field"):
        read_refcoco(refs, instances)
    bad_sent = [dict(REFS[0], sentences=[{"sent_id": 3, "sent": "", "raw": ""}])]
    refs, instances = write_refcoco(tmp_path, refs=bad_sent)
    with pytest.raises(InputFileError, match=r"record ref_id 0 sentence 0, field 'sent'"):
        read_refcoco(refs, instances)
    refs, instances = write_refcoco(tmp_path, refs={"not": "a list"})
    with pytest.raises(InputFileError, match="expected a list of refs"):
        read_refcoco(refs, instances)
    refs, instances = write_refcoco(tmp_path)
    instances.write_text(json.dumps({"annotations": [{"id": 101, "bbox": [0, 0, -1, 5]}]}))
    with pytest.raises(InputFileError, match=r"record annotation 101, field 'bbox': needs w >= 0 and h >= 0"):
        read_refcoco(refs, instances)


# --- REC jsonl -------------------------------------------------------------------------------------------


def write_lines(path, objs):
    path.write_text("".join((json.dumps(o) if not isinstance(o, str) else o) + "\n" for o in objs))
    return path


def test_rec_jsonl_fields_and_aliases(tmp_path):
    f = write_lines(
        tmp_path / "rec.jsonl",
        [
            {"image": "a.jpg", "expression": "the dog", "bbox": [1, 2, 30, 40], "width": 100, "height": 50},
            "",
            {"id": "q7", "image_path": "b.jpg", "sent": " cat ", "box": [0, 0, 5, 5], "extra": 1},
            {"id": 12, "img_path": "c.jpg", "sentence": "s", "bbox": [0, 0, 1, 1]},
            {"file_name": "d.jpg", "query": "q", "bbox": [0, 0, 1, 1]},
            {"image": "e.jpg", "text": "t", "bbox": [0.5, 0.5, 1.5, 2.5]},
        ],
    )
    got = read_rec_jsonl(f)
    assert [(i, r.id, r.image, r.query) for i, r in got] == [
        (0, "0", "a.jpg", "the dog"),
        (2, "q7", "b.jpg", "cat"),
        (3, "12", "c.jpg", "s"),
        (4, "4", "d.jpg", "q"),
        (5, "5", "e.jpg", "t"),
    ]
    assert got[0][1].boxes == {"0": [1.0, 2.0, 30.0, 40.0]} and (got[0][1].width, got[0][1].height) == (100, 50)
    assert got[1][1].width is None and got[1][1].task == "rec" and got[1][1].meta == {"line": 3}


def test_rec_jsonl_xywh(tmp_path):
    f = write_lines(tmp_path / "rec.jsonl", [{"image": "a.jpg", "expression": "x", "bbox": [10, 20, 30, 40]}])
    assert read_rec_jsonl(f, bbox_format="xywh")[0][1].boxes == {"0": [10.0, 20.0, 40.0, 60.0]}
    assert read_rec_jsonl(f)[0][1].boxes == {"0": [10.0, 20.0, 30.0, 40.0]}
    with pytest.raises(ValueError):
        read_rec_jsonl(f, bbox_format="cxcywh")


def test_rec_jsonl_accepts_unistg_records(tmp_path):
    rec = {"id": "r1", "task": "rec", "query": "the cup", "image": "i.jpg", "boxes": {"0": [1, 1, 4, 4]}}
    f = write_lines(tmp_path / "records.jsonl", [rec, {"image": "a.jpg", "expression": "x", "bbox": [0, 0, 1, 1]}])
    got = read_rec_jsonl(f)
    assert [(i, r.id, r.source) for i, r in got] == [(0, "r1", "unknown"), (1, "1", "rec-jsonl")]
    f = write_lines(tmp_path / "bad.jsonl", [dict(rec, task="vtg", video="v.mp4")])
    with pytest.raises(InputFileError, match=r"record r1, field 'task': must be 'rec' here"):
        read_rec_jsonl(f)
    f = write_lines(tmp_path / "bad.jsonl", [dict(rec, boxes={"0": [0, 0, 1, 1], "1": [0, 0, 1, 1]})])
    with pytest.raises(InputFileError, match=r"record r1, field 'boxes': a REC record needs exactly one box"):
        read_rec_jsonl(f)


@pytest.mark.parametrize(
    ("obj", "record", "field", "fragment"),
    [
        ({"expression": "x", "bbox": [0, 0, 1, 1]}, "1", "image", "missing required field (one of image, image_path"),
        ({"image": "a.jpg", "bbox": [0, 0, 1, 1]}, "1", "expression", "missing required field (one of expression"),
        ({"image": "a.jpg", "expression": "x"}, "1", "bbox", "missing required field (one of bbox, box)"),
        ({"image": "a.jpg", "expression": " ", "bbox": [0, 0, 1, 1]}, "1", "expression", "non-empty string"),
        ({"image": 3, "expression": "x", "bbox": [0, 0, 1, 1]}, "1", "image", "non-empty string"),
        ({"image": "a.jpg", "expression": "x", "bbox": [0, 0, 1]}, "1", "bbox", "must be 4 numbers"),
        ({"image": "a.jpg", "expression": "x", "box": [0, 0, "1", 1]}, "1", "box", "must be 4 numbers"),
        ({"image": "a.jpg", "expression": "x", "bbox": [5, 0, 1, 1]}, "1", "bbox", "needs x2 >= x1"),
        ({"image": "a.jpg", "expression": "x", "bbox": [0, 0, 1, 1], "width": 0}, "1", "width", "positive number"),
        ({"id": None, "image": "a.jpg", "expression": "x", "bbox": [0, 0, 1, 1]}, "1", "id", "non-empty string"),
        ({"id": "0", "image": "a.jpg", "expression": "x", "bbox": [0, 0, 1, 1]}, "0", "id", "duplicate id"),
    ],
)
def test_rec_jsonl_malformed(tmp_path, obj, record, field, fragment):
    f = write_lines(tmp_path / "rec.jsonl", [{"image": "a.jpg", "expression": "ok", "bbox": [0, 0, 1, 1]}, obj])
    with pytest.raises(InputFileError) as e:
        read_rec_jsonl(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and f"record {record}," in msg and f"field {field!r}" in msg and fragment in msg


def test_rec_jsonl_bad_json_lines(tmp_path):
    f = tmp_path / "rec.jsonl"
    f.write_text('{"image": "a.jpg"\n')
    with pytest.raises(InputFileError, match="line 1 is not valid JSON"):
        read_rec_jsonl(f)
    f.write_text("[1, 2]\n")
    with pytest.raises(InputFileError, match="line 1 must be a JSON object"):
        read_rec_jsonl(f)
