"""The package's layers only point down: every ``spacevllm`` import (module top or inside a function) of every
module is checked against the layer map below, read from the source with :mod:`ast`."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "spacevllm"

# layer prefix -> prefixes it must never import (checked on every import statement, also inside functions)
FORBIDDEN = {
    # the bottom: file I/O, box / time / text formats, records and the benchmark readers
    "spacevllm.errors": ("spacevllm.",),
    "spacevllm.io_utils": ("spacevllm.data", "spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine"),
    "spacevllm.box_ops": ("spacevllm.data", "spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine"),
    "spacevllm.time_ops": ("spacevllm.data", "spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine"),
    "spacevllm.text_coords": ("spacevllm.data", "spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine"),
    "spacevllm.prompts": ("spacevllm.data", "spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine"),
    "spacevllm.data.records": ("spacevllm.data.", "spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine"),
    "spacevllm.data.readers": ("spacevllm.metrics", "spacevllm.modeling", "spacevllm.engine", "spacevllm.data.world"),
    # metrics: above the bottom, below everything that scores
    "spacevllm.metrics": ("spacevllm.data", "spacevllm.modeling", "spacevllm.engine", "spacevllm.demo"),
    # the model package imports nothing from data, engine or commands
    "spacevllm.modeling": ("spacevllm.data", "spacevllm.engine", "spacevllm.metrics"),
    "spacevllm.losses": ("spacevllm.data", "spacevllm.engine", "spacevllm.metrics", "spacevllm.modeling"),
    "spacevllm.data": ("spacevllm.engine",),
    "spacevllm.engine": (),
    # the user-facing layer over the model: the Python API, then the web demo and the lmms-eval model on top of it
    "spacevllm.api": ("spacevllm.data", "spacevllm.engine", "spacevllm.metrics", "spacevllm.serve", "spacevllm.lmms_"),
    "spacevllm.serve": ("spacevllm.data", "spacevllm.engine", "spacevllm.metrics", "spacevllm.lmms_eval"),
    "spacevllm.lmms_eval": ("spacevllm.engine", "spacevllm.metrics", "spacevllm.serve"),
}
EVERYONE = ("spacevllm.commands", "spacevllm.cli")  # only the CLI (and its commands) import the CLI


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return [m for m in out if m.startswith("spacevllm")]


def _violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        name = _module_name(path)
        rules = [v for k, v in FORBIDDEN.items() if name == k or name.startswith(k + ".")]
        forbidden = tuple(p for rule in rules for p in rule)
        if not name.startswith(EVERYONE):
            forbidden += EVERYONE
        for imported in _imports(path):
            if imported.startswith(forbidden) and not imported.startswith(name + "."):
                bad.append(f"{name} imports {imported}")
    return bad


def test_imports_only_point_down():
    assert _violations() == []


def test_layer_check_sees_function_level_imports(tmp_path, monkeypatch):
    fake = tmp_path / "spacevllm" / "modeling" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from spacevllm.data.records import Record\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "spacevllm")
    assert _violations()[0] == "spacevllm.modeling.x imports spacevllm.data.records"


@pytest.mark.parametrize("name", ["spacevllm.data.readers.hcstvg", "spacevllm.metrics.stvg", "spacevllm.modeling"])
def test_layer_map_covers_the_package(name):
    assert any(name == k or name.startswith(k + ".") for k in FORBIDDEN)
