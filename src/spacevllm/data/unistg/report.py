"""What each stage removed and why: counts per stage and reason, as a dict (JSON) and as a text table."""

from __future__ import annotations

from collections import Counter

from spacevllm.data.unistg.sample import Drop


class Report:
    """Counts of one pipeline run over the stages ``stages`` (names, in order).

    ``add(None)`` records a kept sample, ``add(stage, drop)`` a sample removed by ``stage``. Reports add up
    (``merge``), so per-video results of a resumed or parallel run give the same totals.
    """

    def __init__(self, stages: list[str]):
        self.stages = list(stages)
        self.kept = 0
        self.removed: dict[str, Counter] = {s: Counter() for s in self.stages}

    def add(self, stage: str | None = None, drop: Drop | None = None) -> None:
        if stage is None:
            self.kept += 1
        else:
            self.removed.setdefault(stage, Counter())[drop.reason] += 1

    def merge(self, other: Report) -> Report:
        self.kept += other.kept
        for stage, counts in other.removed.items():
            self.removed.setdefault(stage, Counter()).update(counts)
        return self

    @property
    def total(self) -> int:
        return self.kept + sum(sum(c.values()) for c in self.removed.values())

    def to_dict(self) -> dict:
        """``{"input": n, "kept": k, "removed": r, "stages": [{"stage", "in", "removed", "reasons": {reason: n}}]}``."""
        rows, remaining = [], self.total
        for stage in self.stages + [s for s in self.removed if s not in self.stages]:
            counts = self.removed.get(stage, Counter())
            rows.append({"stage": stage, "in": remaining, "removed": sum(counts.values()),
                         "reasons": dict(sorted(counts.items()))})  # fmt: skip
            remaining -= sum(counts.values())
        return {"input": self.total, "kept": self.kept, "removed": self.total - self.kept, "stages": rows}

    def format(self) -> str:
        """A plain-text table: one line per stage and one indented line per reason."""
        d = self.to_dict()
        lines = [f"{'stage':<12}{'in':>8}{'removed':>9}  reason"]
        for row in d["stages"]:
            lines.append(f"{row['stage']:<12}{row['in']:>8}{row['removed']:>9}")
            lines += [f"{'':<12}{'':>8}{n:>9}  {reason}" for reason, n in row["reasons"].items()]
        share = d["kept"] / d["input"] if d["input"] else 0.0
        lines.append(f"kept {d['kept']} of {d['input']} samples ({share:.1%}), removed {d['removed']}")
        return "\n".join(lines)
