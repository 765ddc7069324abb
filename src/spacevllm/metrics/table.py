"""Print metric dicts as the paper's tables: one row per model/split, values in percent."""

from __future__ import annotations


def format_table(rows: list[tuple[str, dict]], columns: list[str], title: str | None = None) -> str:
    """Render ``rows`` = [(row name, {column: fraction in [0, 1]})] as a fixed-width text table.

    Values are shown in percent with one decimal, as in the paper; ``n`` (a count) is shown as is.
    """
    name_w = max([len(r[0]) for r in rows] + [len("split")])
    widths = [max(len(c), 7) for c in columns]
    head = "split".ljust(name_w) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths))
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for name, values in rows:
        cells = []
        for c, w in zip(columns, widths):
            v = values.get(c)
            cell = "-" if v is None else (str(int(v)) if c == "n" else f"{100 * v:.1f}")
            cells.append(cell.rjust(w))
        lines.append(name.ljust(name_w) + "  " + "  ".join(cells))
    return "\n".join(lines)
