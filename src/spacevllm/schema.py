"""Declarative checks of config values and CLI flags: one validation pass before any work starts.

A config dataclass declares each field's type and range in its metadata (``field(default=..., metadata=rule(...))``
or :func:`setting`); :func:`validate` walks a (nested) dataclass instance and raises one
:class:`~spacevllm.errors.SpaceVLLMError` naming the file and the key (``CONFIG.yaml: optim.lr must be a positive
number, got 'abc'``). :func:`check_flag` applies the same :class:`Rule` to a CLI value and names the flag.

Numbers: ``int`` accepts integers only (not booleans, not 2.5); ``float`` accepts finite numbers and numeric strings
(YAML 1.1 reads ``1e-5`` without a dot as a string); NaN and infinities are refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spacevllm.errors import SpaceVLLMError

_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
               dict: "a mapping"}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """The type and range of one value. ``kind``: int | float | str | bool | list | dict (or a tuple of them);
    ``ge`` / ``gt`` / ``le`` / ``lt``: bounds of a number; ``choices``: allowed values; ``optional``: None allowed;
    ``each``: a rule for every item of a list (or value of a mapping); ``keys``: the allowed keys of a mapping;
    ``length``: the length of a list; ``check``: a last test ``value -> message or None``."""

    kind: type | tuple = object
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    optional: bool = False
    each: Rule | None = None
    keys: tuple | None = None
    length: int | None = None
    check: Callable[[Any], str | None] | None = None

    def problem(self, value) -> tuple[str | None, Any]:
        """(None, the value converted) when it passes, else (what it must be, value)."""
        if value is None:
            return (None, None) if self.optional else (f"must be {self._expected()}", value)
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        converted = _convert(value, kinds)
        if converted is _BAD:
            return f"must be {self._expected()}", value
        if self.choices is not None and converted not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}", value
        if isinstance(converted, (int, float)) and not isinstance(converted, bool):
            bad = self._out_of_range(converted)
            if bad:
                return bad, value
        if self.length is not None and len(converted) != self.length:
            return f"must be a list of {self.length} values", value
        if self.keys is not None and isinstance(converted, dict):
            unknown = sorted(str(k) for k in converted if k not in self.keys)
            if unknown:
                return f"has unknown key {unknown[0]!r} (known: {', '.join(self.keys)})", value
        if self.each is not None:
            items = converted.items() if isinstance(converted, dict) else enumerate(converted)
            for key, item in items:
                message, _ = self.each.problem(item)
                if message:
                    return f"[{key!s}] {message}", item
        if self.check is not None:
            message = self.check(converted)
            if message:
                return message, value
        return None, converted

    def _expected(self) -> str:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        text = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        if float in kinds or int in kinds:
            text = self._range_text(text)
        return text + (" (or null)" if self.optional else "")

    def _range_text(self, noun: str) -> str:
        if self.gt == 0 and self.ge is None and self.le is None and self.lt is None:
            return noun.replace("an integer", "a positive integer").replace("a number", "a positive number")
        parts = []
        if self.ge is not None:
            parts.append(f">= {self.ge:g}")
        if self.gt is not None:
            parts.append(f"> {self.gt:g}")
        if self.le is not None:
            parts.append(f"<= {self.le:g}")
        if self.lt is not None:
            parts.append(f"< {self.lt:g}")
        return noun + (f" {' and '.join(parts)}" if parts else "")

    def _out_of_range(self, x: float) -> str | None:
        ok = (
            (self.ge is None or x >= self.ge)
            and (self.gt is None or x > self.gt)
            and (self.le is None or x <= self.le)
            and (self.lt is None or x < self.lt)
        )
        return None if ok else f"must be {self._expected()}"


_BAD = object()


def _convert(value, kinds: tuple):
    """``value`` as the first of ``kinds`` it fits, or ``_BAD``."""
    if object in kinds:
        return value
    if isinstance(value, bool):
        return value if bool in kinds else _BAD
    if int in kinds and isinstance(value, int):
        return value
    if float in kinds and isinstance(value, (int, float, str)):
        try:
            number = float(value)
        except ValueError:
            return _BAD
        return number if math.isfinite(number) else _BAD
    for kind in kinds:
        if kind in (str, list, dict) and isinstance(value, kind):
            return value
    return _BAD


def rule(**kwargs) -> dict:
    """Field metadata holding a :class:`Rule`: ``field(default=1, metadata=rule(kind=int, ge=1))``."""
    return {"rule": Rule(**kwargs)}


def setting(default=None, *, factory=None, **kwargs):
    """A dataclass field with a default (or ``factory``) and a :class:`Rule` of ``kwargs``."""
    if factory is not None:
        return field(default_factory=factory, metadata=rule(**kwargs))
    return field(default=default, metadata=rule(**kwargs))


def validate(obj, source: str, prefix: str = "") -> None:
    """Check every field of dataclass ``obj`` (and of nested dataclasses) that has a rule; convert the values
    (e.g. ``"1e-5"`` -> ``1e-05``) in place. Raises one :class:`SpaceVLLMError` ``"{source}: {key} ..."``."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, source, f"{key}.")
            continue
        spec = f.metadata.get("rule")
        if spec is None:
            continue
        message, converted = spec.problem(value)
        if message:
            raise SpaceVLLMError(f"{source}: {key} {message}, got {converted!r}")
        setattr(obj, f.name, converted)


def field_rule(cls, key: str) -> Rule:
    """The rule of dotted ``key`` (``"optim.max_steps"``) in dataclass ``cls``."""
    head, _, rest = key.partition(".")
    f = {f.name: f for f in dataclasses.fields(cls)}[head]
    if rest:
        return field_rule(f.default_factory if f.default_factory is not dataclasses.MISSING else f.type, rest)
    return f.metadata["rule"]


def check_flag(flag: str, value, spec: Rule):
    """``value`` of CLI ``flag`` checked against ``spec`` (converted); one line naming the flag otherwise. A flag
    that is given has a value: ``optional`` does not apply."""
    message, converted = dataclasses.replace(spec, optional=False).problem(value)
    if message:
        raise SpaceVLLMError(f"{flag} {message}, got {converted!r}")
    return converted


def check_mapping(mapping: dict, table: dict, source: str, prefix: str = "", strict: bool = True) -> dict:
    """Check a config mapping against ``table`` (key -> :class:`Rule`, or a nested table for a sub-mapping);
    keys absent from ``mapping`` are not checked. Returns ``mapping`` with converted values (a new dict).
    ``strict``: a key not in ``table`` is an error naming it."""
    if not isinstance(mapping, dict):
        where = prefix.rstrip(".") or "the config"
        raise SpaceVLLMError(f"{source}: {where} must be a mapping, got {mapping!r}")
    out = dict(mapping)
    for key, value in mapping.items():
        spec = table.get(key)
        if spec is None:
            if strict:
                known = ", ".join(map(str, table))
                raise SpaceVLLMError(f"{source}: unknown key {prefix}{key!s} (known: {known})")
            continue
        if isinstance(spec, dict):
            out[key] = check_mapping(value, spec, source, f"{prefix}{key}.", strict)
            continue
        message, converted = spec.problem(value)
        if message:
            raise SpaceVLLMError(f"{source}: {prefix}{key} {message}, got {converted!r}")
        out[key] = converted
    return out
