"""Seed networks: the existing networks a search starts from (registered via `na_register_seeds`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, NAToolkitError, UnknownComponentError
from .architecture import Architecture

if TYPE_CHECKING:
    from ..registry import Registry
    from ..toolkit import Toolkit
    from .layers import LayerTypeRegistry


@dataclass(frozen=True)
class Seed:
    """A seed network: `build(layer_types)` returns its `Architecture`, validated against those types.

    A seed may stand for a family of networks (a benchmark's search space): `parse(spec, layer_types,
    table)` then turns a spec string of the family's own form into one of them (e.g. an NB201 cell string
    or `INDEX` of its table), or returns None when `spec` is not of that form. Commands that take an
    architecture argument accept `NAME:SPEC` and, failing other readings, any family's own form."""

    name: str
    description: str
    build: Callable[[LayerTypeRegistry], Architecture]
    #: the dataset the seed's input shape is made for (informational)
    dataset: str = ""
    parse: Callable[[str, LayerTypeRegistry, str | None], Architecture | None] | None = None

    @property
    def builds_for_data(self) -> bool:
        """Whether its builder takes a dataset's `input_shape` and `classes` (keyword arguments), so that
        `build_for` can build it for any data."""
        try:
            accepted = inspect.signature(self.build).parameters
        except (TypeError, ValueError):  # a builder without a readable signature (a C function)
            return False
        return "input_shape" in accepted and "classes" in accepted

    def build_for(
        self, layer_types: LayerTypeRegistry, input_shape: tuple[int, ...], classes: int
    ) -> Architecture | None:
        """The seed built for a dataset's input shape and class count, when its builder takes them (keyword
        arguments `input_shape` and `classes`, as the built-in seeds' do); None when it does not."""
        if not self.builds_for_data:
            return None
        return self.build(layer_types, input_shape=tuple(input_shape), classes=int(classes))  # type: ignore[call-arg]


def fixed_seed_hint(seeds: Registry[Seed]) -> str:
    """What to do when a seed whose builder takes no input shape does not fit a dataset."""
    others = [n for n in seeds.names() if seeds.get(n).builds_for_data]
    return (
        "the seed is built for one input shape (its builder takes no input_shape); start from a seed "
        f"built for the data ({', '.join(others) or 'none registered'}) or from a network file made for it"
    )


def get_seed(name: str, toolkit: Toolkit) -> Architecture:
    """The seed `name` of `toolkit`, built with the toolkit's layer types."""
    return toolkit.seeds.get(name).build(toolkit.layer_types)


# ---- a seed network named in a config or on the command line -------------------------------------------
def seed_reference(value: str, base: Path, toolkit: Toolkit, label: str = "seed_network") -> str:
    """The seed network reference as stored: a registered name (even where a file of that name lies in `base`:
    a warning says to write './NAME'), or an absolute path to a .json / .onnx (a relative one is from `base`;
    `na_toolkit.files.name_or_path`). Errors name the reference as `label` (a config key, a CLI flag)."""
    from ..files import name_or_path, nearby_paths

    try:
        path = name_or_path(value, toolkit.seeds.names(), "seed network", base)
    except UnknownComponentError as exc:
        raise ConfigError(f"{label}: {exc}; a network file is an IR .json or an .onnx") from None
    if path is None:
        return value
    suffix = path.suffix.lower()
    if suffix in (".json", ".onnx"):
        if not path.is_file():
            raise ConfigError(f"{label}: file {str(path)!r} does not exist")
        return str(path.resolve())
    what = f"a {suffix} file" if suffix else "a file without a suffix"
    if path.is_dir():
        what = "a folder"
    elif not path.exists():
        nearby = nearby_paths(path, (".json", ".onnx"), folders=False)
        meant = f" (did you mean {' or '.join(map(repr, nearby))}?)" if nearby else ""
        what = f"no file that exists in {str(path.parent)!r}{meant}"
    raise ConfigError(
        f"{label}: {value!r} is {what}, not a network; give an IR .json or an .onnx file, or a registered seed "
        f"({', '.join(toolkit.seeds.names()[:6])}, ...: na-toolkit arch seeds)"
    )


def build_seed_reference(reference: str, toolkit: Toolkit, label: str = "seed_network") -> Architecture:
    """The network a `seed_reference` names (a registered seed, an IR .json, an .onnx), built with the
    toolkit's layer types; one that fails validation is a ConfigError naming `label`."""
    try:
        if reference in toolkit.seeds:
            return toolkit.seeds.get(reference).build(toolkit.layer_types)
        if reference.lower().endswith(".json"):
            return Architecture.load(reference, layer_types=toolkit.layer_types)
        from .onnx_import import from_onnx

        arch: Architecture = from_onnx(reference, layer_types=toolkit.layer_types)
        return arch
    except UnknownComponentError as exc:
        raise ConfigError(f"{label} {reference!r}: {exc}") from None
    except NAToolkitError as exc:
        # the file is named once: Architecture.load's own "architecture file 'PATH': " would name it twice
        why = str(exc).removeprefix(f"architecture file {str(Path(reference))!r}: ")
        raise ConfigError(f"{label} {reference!r} is not a valid network: {why}") from None
