"""Progress bars: live (``\\r`` redraws) on a terminal, whole periodic lines when stderr is a file or a pipe."""

from __future__ import annotations

import spacevllm.progress as progress


def test_off_a_terminal_the_bar_prints_whole_lines(capsys):
    for _ in progress.progress_bar(range(5), desc="work"):
        pass
    err = capsys.readouterr().err
    assert "\r" not in err and err.endswith("\n")
    lines = err.splitlines()
    assert lines[0].startswith("work:   0%") and "5/5" in lines[-1] and len(lines) <= 3


def test_on_a_terminal_the_bar_redraws(capsys, monkeypatch):
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    for _ in progress.progress_bar(range(3), desc="work"):
        pass
    assert "\r" in capsys.readouterr().err


def test_disabled_is_silent(capsys):
    for _ in progress.progress_bar(range(3), enabled=False):
        pass
    assert capsys.readouterr().err == ""
