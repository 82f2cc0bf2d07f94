"""The executor protocol (fleshed out by the search issue)."""

from __future__ import annotations

from typing import ClassVar


class Executor:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
