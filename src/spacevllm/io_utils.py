"""File I/O at the bottom of the package: atomic output and one-line-error readers (JSON, YAML).

Output is written to a temporary file in the same folder, then renamed: never a half-written output behind, even
when interrupted (kill -9 leaves at most a ``.tmp`` file that the next run overwrites).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from spacevllm.errors import InputFileError, SpaceVLLMError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = check_output(path, "file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if Path(tmp).is_file():
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (any old folder is removed).

    On an exception the temporary folder is deleted and ``path`` is left as it was.
    """
    path = check_output(path, "folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        umask = _umask()
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700; give the folder the usual permissions
        for file in tmp.rglob("*"):  # transformers writes model.safetensors through a 0600 temporary file
            if file.is_file() and not file.is_symlink():
                os.chmod(file, 0o666 & ~umask)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output(path: str | os.PathLike, kind: str = "file") -> Path:
    """``path`` as a Path, after checking that a ``kind`` ("file" or "folder") can be written there.

    Raises :class:`SpaceVLLMError` naming the path when it already exists as the other kind, or when the nearest
    existing ancestor is not a folder or not writable. Commands call it before their work starts, so a bad
    ``--out`` fails at once instead of after the work; :func:`atomic_path` and :func:`atomic_dir` call it too.
    """
    path = Path(path)
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    if path.is_dir() and kind == "file":
        raise SpaceVLLMError(f"{path}: is a folder, expected an output file")
    if path.exists() and not path.is_dir() and kind == "folder":
        raise SpaceVLLMError(f"{path}: exists and is not a folder")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SpaceVLLMError(f"{path}: cannot write there ({ancestor} is not a folder)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SpaceVLLMError(f"{path}: cannot write there ({ancestor} is not writable)")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write one JSON object per line to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_yaml(path: str | Path):
    """The parsed YAML file (an empty file is ``{}``). Raises :class:`SpaceVLLMError` naming the file when it is
    missing, unreadable or not valid YAML."""
    path = Path(path)
    if path.is_dir():
        raise SpaceVLLMError(f"{path}: is a folder, not a config file")
    if not path.is_file():
        raise SpaceVLLMError(f"{path}: no such config file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise SpaceVLLMError(f"{path}: cannot read config ({e})") from None
    except yaml.YAMLError as e:
        raise SpaceVLLMError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def load_json(path: str | os.PathLike):
    """The parsed JSON file (``json.load``). Raises :class:`InputFileError` naming the file when it is missing,
    not valid JSON or not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(path, "is a folder, not a JSON file")
    if not path.is_file():
        raise InputFileError(path, "no such file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputFileError(path, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise InputFileError(path, f"not UTF-8 text ({e.reason})") from None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``; else free physical pages), or None
    when unknown. Commands compare their up-front estimates with it to refuse work that cannot fit."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse (one line: ``what`` needs about N GB, M GB available; ``fix``) when ``needed`` bytes exceed the
    available memory."""
    have = available_memory()
    if have is not None and needed > have:
        raise SpaceVLLMError(f"{what} needs about {_gb(needed)} of memory, {_gb(have)} available: {fix}")


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GB" if n >= 2**30 / 10 else f"{n / 2**20:,.0f} MB"
