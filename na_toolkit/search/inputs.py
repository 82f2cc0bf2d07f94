"""A run is self-contained: the files its config names are copied into its folder.

The seed network (an IR .json or .onnx), the data set file, and every component option that names a file
(a hardware model TOML, a device profile, a predictor or table file: the `PATH_OPTIONS` keys of
search/config.py) are copied into `<run>/inputs/` when the run starts, and the config the store keeps
refers to the copies by paths relative to the run folder. `--resume` reads the config back against the
run folder, so it needs none of the original files (they may have moved, changed or gone), and a run
folder that is copied or moved keeps working.

Folders (a data set given as a directory) and files over `MAX_COPY_BYTES` are not copied: they stay
referenced by their absolute path (data, not configuration).
"""

from __future__ import annotations

import copy
import filecmp
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import PATH_OPTIONS, Component, SearchConfig

__all__ = ["INPUTS_DIR", "MAX_COPY_BYTES", "RunInputs", "copy_inputs", "plan_inputs"]

INPUTS_DIR = "inputs"
#: a named file larger than this (a big data set) is referenced where it is instead of copied
MAX_COPY_BYTES = 64 * 2**20


@dataclass
class RunInputs:
    """The config document of a run as stored (named files replaced by their copies, relative to the run
    folder) and the files to copy: copy (relative) → original (absolute)."""

    doc: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    def config(self, config: SearchConfig, folder: Path) -> SearchConfig:
        """`config` (resolved: its components read the original files) that stores and reports `doc`."""
        return replace(config, doc=copy.deepcopy(self.doc), base_dir=folder, origin_dir=config.base_dir)


def plan_inputs(config: SearchConfig) -> RunInputs:
    """Which files of the resolved `config` a run copies, and its stored document (see the module
    docstring). Pure: nothing is read or written but `stat`s; the same config always gives the same plan."""
    doc = copy.deepcopy(config.doc)
    plan = RunInputs(doc)
    by_original: dict[str, str] = {}

    def take(value: Any) -> str | None:
        """The copy's relative path for a value naming a copyable file (None: leave the value as it is)."""
        if not isinstance(value, str) or not os.path.isabs(value) or not os.path.isfile(value):
            return None
        if os.path.getsize(value) > MAX_COPY_BYTES:
            return None
        if value in by_original:
            return by_original[value]
        name = Path(value).name
        rel = f"{INPUTS_DIR}/{name}"
        i = 2
        while rel in plan.files:  # two files of the same name from two folders: a subfolder keeps the name
            rel = f"{INPUTS_DIR}/{i}/{name}"  # (a hardware model's name must equal its file's stem)
            i += 1
        plan.files[rel] = value
        by_original[value] = rel
        return rel

    if (rel := take(config.seed_network)) is not None:
        doc["seed_network"] = rel
    if (rel := take(config.dataset)) is not None:
        doc["dataset"] = rel

    def component(where: tuple[str, ...], comp: Component | None) -> None:
        if comp is None:
            return
        table: Any = doc
        for key in where[:-1]:
            table = table.setdefault(key, {})
        entry = table.get(where[-1])
        for key in PATH_OPTIONS:
            rel = take(comp.options.get(key))
            if rel is None:
                continue
            if not isinstance(entry, dict):  # `time_model = "NAME"`: the option came from a default
                entry = {"name": comp.name}
                table[where[-1]] = entry
            entry.setdefault("options", {})[key] = rel

    component(("strategy",), config.strategy)
    component(("evaluator",), config.evaluator)
    component(("executor",), config.executor)
    for target, comp in config.predictors.items():
        component(("predictors", target), comp)
    for dev in config.devices:
        component(("devices", dev.name, "time_model"), dev.time_model)
        component(("devices", dev.name, "measure"), dev.measure)
        if (rel := take(dev.device)) is not None:
            doc.setdefault("devices", {}).setdefault(dev.name, {})["device"] = rel
    return plan


def changed_since_copied(plan: RunInputs, folder: Path) -> list[str]:
    """The files a config given with --resume names whose content is not the copy the run made when it
    started (a seed network edited since): the run goes on from its copies, so that config is not its own."""
    return [
        f"file {original!r} and the run's copy {rel}"
        for rel, original in plan.files.items()
        if (folder / rel).is_file() and not filecmp.cmp(original, folder / rel, shallow=False)
    ]


def copy_inputs(plan: RunInputs, folder: Path) -> None:
    """Copy the planned files into `folder` (each written to a temporary name, then renamed: a killed copy
    leaves no half file under the final name). A file that vanished since the config was read is a
    ConfigError naming it."""
    for rel, original in plan.files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            shutil.copyfile(original, tmp)
            os.replace(tmp, target)
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"file {original!r} named by the config is gone; give an existing file") from None
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot copy {original!r} into the run folder {str(folder)!r}: {exc}") from None


def remove_inputs(inputs: RunInputs, folder: Path) -> None:
    """Remove the copies of a run that then failed to start (and their folder when that is left empty)."""
    for rel in inputs.files:
        (folder / rel).unlink(missing_ok=True)
    try:
        (folder / INPUTS_DIR).rmdir()
    except OSError:
        pass
