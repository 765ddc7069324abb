"""User-facing errors.

Anything a user can cause (bad file, bad record, empty query, too-short video) raises
:class:`SpaceVLLMError`. The CLI prints its message on one line and exits with ``exit_code``
(2 by default), never with a traceback.
"""

from __future__ import annotations


class SpaceVLLMError(Exception):
    """An error caused by the user's input; ``str(err)`` is the one-line reason."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputFileError(SpaceVLLMError):
    """A malformed input file. The message names the file, the record and the field."""

    def __init__(self, path, message: str, record=None, field: str | None = None):
        where = str(path)
        if record is not None:
            where += f", record {record!s}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.record, self.field = path, record, field


class VideoError(SpaceVLLMError):
    """A missing, unreadable, empty or too-short video."""
