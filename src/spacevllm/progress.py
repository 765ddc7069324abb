"""Progress bars on stderr for every command: a live tqdm bar on a terminal, periodic plain lines elsewhere.

A tqdm bar redraws itself with ``\\r``; written into a log file or a CI log (stderr not a terminal) that is one
endless line of carriage returns. :func:`progress_bar` gives a normal bar when stderr is a terminal and otherwise
a bar that prints one line at most every ``LOG_INTERVAL`` seconds (and at the end), so logs stay readable. It
always writes to stderr: stdout (``--json``) is never touched.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between progress lines when stderr is not a terminal


class _Lines:
    """A file-like object turning tqdm's ``\\r``-redraws into whole lines on ``stream``."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = stream if stream is not None else sys.stderr
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A tqdm bar on stderr (``kwargs`` as tqdm's: total, initial, desc, unit, ...): live on a terminal, one line
    per ``LOG_INTERVAL`` seconds otherwise; ``enabled`` False gives a silent one."""
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if is_terminal():
        return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, **kwargs)
    return tqdm(
        iterable, file=_Lines(sys.stderr), mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL, ncols=100, **kwargs
    )
