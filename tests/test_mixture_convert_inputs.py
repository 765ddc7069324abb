"""``mixture build --scale`` refused up front when the mixture cannot fit in memory (with the size it would need),
and ``convert`` refusing an ``--out`` that is its source folder or inside it."""

from __future__ import annotations

import pytest
from helpers import fails_with_one_line

WORLD_TINY = "src/spacevllm/configs/mixture/world_tiny.yaml"


def test_mixture_scale_too_large_is_refused_before_reading(tmp_path, capsys, monkeypatch):
    """--root points at a folder without the sources: the refusal comes before any source is read."""
    import spacevllm.commands.mixture  # noqa: F401  (imported before the patch: it binds read_source itself)
    import spacevllm.data.mixture as mixture

    monkeypatch.setattr(mixture, "read_source", lambda *a, **k: pytest.fail("a source was read"))
    out = tmp_path / "mix"
    argv = ["mixture", "build", "--config", WORLD_TINY, "--root", str(tmp_path), "--out", str(out), "--scale", "1e9"]
    fails_with_one_line(argv, capsys, "580,000,000,000 records", "needs about", "GB of memory", "lower --scale")
    assert not out.exists()


def test_mixture_bad_seed(tmp_path, capsys):
    argv = ["mixture", "build", "--config", WORLD_TINY, "--out", str(tmp_path / "m"), "--seed", "-3"]
    fails_with_one_line(argv, capsys, "--seed must be an integer >= 0, got -3")


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf"])
def test_mixture_bad_scale(scale, tmp_path, capsys):
    argv = ["mixture", "build", "--config", WORLD_TINY, "--out", str(tmp_path / "m"), "--scale", scale]
    fails_with_one_line(argv, capsys, "--scale must be a positive number")


@pytest.mark.parametrize("inside", [False, True])
def test_convert_out_equal_to_or_inside_the_source_is_refused(inside, tmp_path, capsys):
    from spacevllm.modeling.tiny import build_tiny_checkpoint

    src = build_tiny_checkpoint(tmp_path / "final", num_frames=4, image_size=32, patch_size=16)
    before = sorted(p.name for p in src.iterdir())
    out = src / "finer" if inside else src
    fails_with_one_line(
        ["convert", "--finer-patches", str(src), "--out", str(out)], capsys, "the source folder", str(src)
    )
    assert sorted(p.name for p in src.iterdir()) == before
    fails_with_one_line(["convert", "--source", str(src), "--out", str(out)], capsys, "the source folder")
