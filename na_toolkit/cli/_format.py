"""Plain-text formatting shared by the `na-toolkit` commands (tables, shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int] | None = None) -> str:
    """A plain-text table; columns in `right` are right-aligned (numbers)."""
    right = right or set()
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def shape_str(shape: Sequence[int]) -> str:
    """A tensor shape as `CxHxW`."""
    return "x".join(map(str, shape))
