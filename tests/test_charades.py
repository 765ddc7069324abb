"""Charades-STA reader on the real test list, malformed lines, durations."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacevllm.data.readers.charades import load_durations, parse_line, read_charades_sta
from spacevllm.data.records import read_records, write_records
from spacevllm.errors import InputFileError, SpaceVLLMError


@pytest.fixture(scope="module")
def charades_test(real_data):
    return real_data / "charades_sta" / "charades_sta_test.txt"


@pytest.fixture(scope="module")
def records(charades_test):
    return read_charades_sta(charades_test)


def test_real_file_count_and_first_line(records):
    assert len(records) == 202
    r = records[0]
    assert (r.id, r.task, r.query, r.start, r.end) == ("0", "vtg", "person turn a light on.", 24.3, 30.4)
    assert (r.video, r.duration, r.source, r.meta) == ("3MSZA.mp4", None, "charades-sta", {"vid": "3MSZA", "line": 1})
    assert records[1].query == "person flipped the light switch near the door."


def test_real_file_ids_are_line_indexes_and_times_valid(records, charades_test):
    assert [r.id for r in records] == [str(i) for i in range(202)]
    assert all(0 <= r.start <= r.end for r in records)
    lines = charades_test.read_text().splitlines()
    last = records[-1]
    assert lines[-1].startswith(f"{last.meta['vid']} ") and lines[-1].endswith("##" + last.query)
    assert len({r.meta["vid"] for r in records}) == 81


def test_records_round_trip_through_the_schema(records, tmp_path):
    write_records(tmp_path / "charades.jsonl", records[:50])
    assert read_records(tmp_path / "charades.jsonl") == records[:50]


def test_videos_dir_and_durations(tmp_path):
    short = tmp_path / "two.txt"
    short.write_text("3MSZA 24.3 30.4##person turn a light on.\nAB12C 0 5.5##a person sits.\n")
    got = read_charades_sta(short, videos_dir="videos", durations={"3MSZA": 31.2, "AB12C": 20}, video_ext=".webm")
    assert [(r.video, r.duration) for r in got] == [("videos/3MSZA.webm", 31.2), ("videos/AB12C.webm", 20.0)]
    with pytest.raises(InputFileError, match=r"record 1 \(line 2\), field 'vid'.*'AB12C' has no duration"):
        read_charades_sta(short, durations={"3MSZA": 31.2})


def test_blank_lines_keep_line_indexes(tmp_path):
    f = tmp_path / "gaps.txt"
    f.write_text("A 0 1##one\n\nB 2 3##three\n\n")
    assert [(r.id, r.meta["vid"]) for r in read_charades_sta(f)] == [("0", "A"), ("2", "B")]


@pytest.mark.parametrize(
    ("line", "field", "fragment"),
    [
        ("3MSZA 24.3 30.4 person turn a light on.", "sentence", "missing '##'"),
        ("3MSZA 24.3##person", "end", "expected 'VID start end'"),
        ("3MSZA##person", "start", "expected 'VID start end'"),
        ("##person", "vid", "expected 'VID start end'"),
        ("3MSZA 24.3 30.4 9##person", "end", "expected 'VID start end'"),
        ("3MSZA abc 30.4##person", "start", "got 'abc'"),
        ("3MSZA 24.3 nan##person", "end", "got 'nan'"),
        ("3MSZA -1 30.4##person", "start", "got '-1'"),
        ("3MSZA 30.4 24.3##person", "end", "end 24.3 < start 30.4"),
        ("3MSZA 24.3 30.4##   ", "sentence", "empty sentence"),
    ],
)
def test_malformed_line_names_file_line_and_field(tmp_path, line, field, fragment):
    f = tmp_path / "bad.txt"
    f.write_text(f"A 0 1##fine\n{line}\n")
    with pytest.raises(InputFileError) as e:
        read_charades_sta(f)
    msg = str(e.value)
    assert msg.startswith(str(f)) and "record 1 (line 2)" in msg and f"field {field!r}" in msg and fragment in msg
    assert isinstance(e.value, SpaceVLLMError) and e.value.field == field


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_charades_sta(tmp_path / "absent.txt")
    f = tmp_path / "latin.txt"
    f.write_bytes(b"A 0 1##caf\xe9\n")
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_charades_sta(f)


vids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=8)
times = st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False)
sentences = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1).filter(
    lambda s: s.strip() and "##" not in s
)


@given(vids, times, times, sentences)
def test_parse_line_round_trip(vid, a, b, sentence):
    start, end = min(a, b), max(a, b)
    assert parse_line(f"{vid} {start!r} {end!r}##{sentence}", "f.txt", 0) == (vid, start, end, sentence.strip())


def test_load_durations_json_and_csv(tmp_path):
    j = tmp_path / "d.json"
    j.write_text(json.dumps({"3MSZA": 31.2, "AB12C": 20}))
    assert load_durations(j) == {"3MSZA": 31.2, "AB12C": 20.0}
    c = tmp_path / "Charades_v1_test.csv"
    c.write_text('id,subject,scene,length\n3MSZA,HR43,Kitchen,31.2\nAB12C,X,"Living room, sofa",20.00\n')
    assert load_durations(c) == {"3MSZA": 31.2, "AB12C": 20.0}
    c.write_text("id,length\n3MSZA,abc\n")
    with pytest.raises(InputFileError, match=r"record row 1, field 'length'"):
        load_durations(c)
    c.write_text("vid,seconds\nA,1\n")
    with pytest.raises(InputFileError, match="columns 'id' and 'length'"):
        load_durations(c)
    j.write_text(json.dumps({"A": -3}))
    with pytest.raises(InputFileError, match=r"record A, field 'duration'"):
        load_durations(j)
