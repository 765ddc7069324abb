"""Helpers shared by several test modules (pytest puts this folder on sys.path: ``from helpers import ...``)."""

from __future__ import annotations

from pathlib import Path

from spacevllm.cli import main

# 75 frames at 25 fps, 256x144 (source and licence: tests/data/README.md)
REAL_CLIP = Path(__file__).resolve().parent / "data" / "bigbuckbunny_256x144.mp4"


def fails_with_one_line(argv, capsys, *needles) -> str:
    """Run the CLI in-process; assert exit code 2, exactly one line on stderr, no traceback, every needle in it."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err
