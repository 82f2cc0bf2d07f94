"""Plain-text formatting shared by the `na-toolkit` commands (tables, shapes), and the parsing of their
KEY=VALUE options."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


def parse_key_values(items: Sequence[str], option: str) -> dict[str, Any]:
    """`KEY=VALUE` arguments of a repeatable `option` as a dict: a VALUE that reads as JSON is that value (a
    number, true, a list), any other the string; ConfigError naming the option for an item with no KEY=."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} takes KEY=VALUE, got {item!r}")
        if key in params:  # the last one won, silently (whatif's --vary refuses a field given twice alike)
            raise ConfigError(f"{option} {key} is given twice; give it once")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


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
