"""The strategy protocol (fleshed out by the search issue)."""

from __future__ import annotations

from typing import ClassVar


class Strategy:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
