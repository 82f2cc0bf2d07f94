"""Built-in hardware plugin: the shipped hardware models (`hwmodels/`, package `na_toolkit.hwmodels`), the
shipped device profiles (`profiles/`, package `na_toolkit.profiles`) and any folders named in the
environment variable `NA_TOOLKIT_HWMODELS_PATH` (os.pathsep-separated)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import na_toolkit
from na_toolkit.errors import DeviceWarning
from na_toolkit.timemodels.hardware import sources_in_folder

HWMODELS_PATH_ENV = "NA_TOOLKIT_HWMODELS_PATH"
SHIPPED_PACKAGES = ("na_toolkit.hwmodels", "na_toolkit.profiles")


def shipped_folder(package: str) -> Path | None:
    """The folder of a data package of the na_toolkit that runs: inside it when installed from a wheel
    (site-packages/na_toolkit/hwmodels), beside it in a source checkout (the repo's top-level hwmodels/,
    which setup.cfg's package_dir maps into the wheel). Looked up next to the imported na_toolkit first: the
    import system's finder of an editable install maps the name to the checkout that was installed, which
    need not be the one running (a git worktree, or another checkout on PYTHONPATH), and would mix one
    checkout's code with another's hardware models."""
    from importlib import resources

    top, _, sub = package.partition(".")
    if top == "na_toolkit" and sub and "." not in sub:
        code = Path(na_toolkit.__file__).resolve().parent
        # the source layout only where this is a checkout of the project (its setup.cfg maps the folder)
        beside = [code.parent / sub] if (code.parent / "setup.cfg").is_file() else []
        for folder in [code / sub, *beside]:
            if (folder / "__init__.py").is_file():
                return folder
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        return None
    # A zipped install would give a non-filesystem Traversable; hardware sources are paths, so skip it.
    path = Path(str(root))
    return path if path.is_dir() else None


def extra_folders() -> list[Path]:
    value = os.environ.get(HWMODELS_PATH_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p.strip()]


@na_toolkit.hookimpl
def na_register_hardware(registry) -> None:
    for package in SHIPPED_PACKAGES:
        folder = shipped_folder(package)
        if folder is not None:
            registry.add_folder(folder)
    # User folders come after the shipped ones; a name already taken is skipped with a warning naming
    # both files (never a silent replacement of a shipped model), and a missing folder is reported.
    for folder in extra_folders():
        if not folder.is_dir():
            warnings.warn(f"{HWMODELS_PATH_ENV}: {folder} is not a folder; ignored", DeviceWarning, stacklevel=2)
            continue
        for source in sources_in_folder(folder):
            if source.name in registry:
                taken = registry.get(source.name).path
                warnings.warn(
                    f"{HWMODELS_PATH_ENV}: {source.path} is not registered, the name {source.name!r} is already "
                    f"taken by {taken}; rename the file or load it by path",
                    DeviceWarning,
                    stacklevel=2,
                )
                continue
            registry.add(source)
