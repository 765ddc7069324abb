import argparse
import os
import subprocess
import sys

import pytest

from spacevllm.cli import build_parser, main


def test_no_command_prints_help_and_exits_two(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "COMMAND" in err and "usage: spacevllm" in err


def test_help_exits_zero_with_a_real_description(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "spatio-temporal video grounding" in out and "``" not in out


def _all_parsers(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _all_parsers(sub, (*path, name))


def test_every_subcommand_help_has_a_description():
    missing = [" ".join(path) for path, sub in _all_parsers(build_parser()) if not sub.description]
    assert not missing, missing


def test_a_closed_stdout_pipe_ends_quietly(tmp_path):
    """`spacevllm ... | head`: the reader is gone before the output is written; no traceback, exit 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run(
        [sys.executable, "-m", "spacevllm.cli", "synth-world", "--out", str(tmp_path), "--n", "2", "--seed", "1"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
