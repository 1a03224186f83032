"""The one table format every benchmark prints: Markdown, so a run pastes straight into
docs/performance.md. The first column is left-aligned and the others right-aligned, except a
trailing free-text column (a note or target), which reads better left-aligned."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], note_last: bool = True
) -> None:
    cells = [[str(c) for c in headers], *([str(c) for c in row] for row in rows)]
    n = len(headers)
    widths = [max(len(row[i]) for row in cells) for i in range(n)]
    left = {0, n - 1} if note_last else {0}

    def line(row: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = ("-" * (w + 1) + ("-" if i in left else ":") for i, w in enumerate(widths))
    print()
    print(line(cells[0]))
    print("|" + "|".join(rule) + "|")
    for row in cells[1:]:
        print(line(row))
