"""README.md's Python example runs as printed: it grounds the bundled sample's query with the embedded model."""

from __future__ import annotations

import re
from pathlib import Path

from spacevllm.assets import sample_info

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_one_short_python_example():
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) == 1
    assert len(blocks[0].strip().splitlines()) <= 6  # the imports and about five lines


def test_readme_example_grounds_the_sample_query(capsys):
    namespace: dict = {}
    exec(compile(_python_blocks(README.read_text(encoding="utf-8"))[0], str(README), "exec"), namespace)
    tube = namespace["tube"]
    gt = sample_info()["record"]
    assert "time range" in capsys.readouterr().out
    assert tube.start is not None and tube.boxes
    overlap = min(tube.end, gt["end"]) - max(tube.start, gt["start"])
    assert overlap > 0  # the range found overlaps the sample's ground-truth range
    for x1, y1, x2, y2 in tube.boxes:  # pixel xyxy inside the sample's frame
        assert 0 <= x1 < x2 <= gt["width"] and 0 <= y1 < y2 <= gt["height"]
