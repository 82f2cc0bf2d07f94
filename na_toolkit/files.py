"""Reading the documents users hand the toolkit (configs, architectures, hardware models, profiles, saved
predictors), safely: one place that refuses what is not a regular file of a sane size, decodes UTF-8 with
an error that says where and how to fix it, and parses JSON or TOML without letting a deeply nested
document overflow the interpreter's stack. Each caller names the document and its own error class.

Arguments that take a registered component's name or a path (a seed or a network file, a dataset or a data
folder, a hardware model or its TOML, a device profile or its JSON) follow one rule, `name_or_path`:

    path = name_or_path(spec, toolkit.seeds.names(), "seed network")   # None: the registered seed

A registered name is the component, even where a file or folder of that name exists (a `ShadowedPathWarning`
names it, once per path, and says to write `./NAME`); a reference that looks like a path (`looks_like_path`)
is a path; a bare name that nothing is registered under is the file or folder of that name where one exists,
and otherwise an `UnknownComponentError` with the close registered names.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tomllib
import warnings
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import NAToolkitError, ShadowedPathWarning, UnknownComponentError

#: documents larger than this are refused before being read (a device profile of 10,000 networks is ~20 MB)
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


def path_exists(spec: str | os.PathLike[str]) -> bool:
    """Whether `spec` names an existing file or folder; False for a name the OS cannot even look up (too
    long, a NUL byte): an argument that may be a path or a name (a seed) must not crash on those."""
    try:
        return Path(spec).exists()
    except (OSError, ValueError):
        return False


# ---- a registered name or a path ----------------------------------------------------------------------
def looks_like_path(reference: str) -> bool:
    """Is a reference written as a path (absolute, `~/...`, `./x`, `data/x`, a suffix such as `.npz`) rather
    than a bare name, which a registered component of that name takes before any file or folder?"""
    return (
        os.path.isabs(reference)
        or reference.startswith(("~", "."))
        or "/" in reference
        or os.sep in reference
        or bool(Path(reference).suffix)
    )


_warned_shadowed: set[str] = set()


def warn_shadowed(kind: str, name: str, path: Path) -> None:
    """Warn (once per process and path) that `name` is the registered `kind` of that name though `path`, a
    file or folder of that name, exists: a user who meant it writes it as a path, `./NAME`."""
    if not path_exists(path) or str(path.resolve()) in _warned_shadowed:
        return
    _warned_shadowed.add(str(path.resolve()))
    what = "folder" if path.is_dir() else "file"
    warnings.warn(
        f"{kind} {name!r} is the registered {kind} of that name, not the {what} {str(path)!r}; to use that, "
        f"write it as a path: './{name}'",
        ShadowedPathWarning,
        stacklevel=3,
    )


def name_or_path(spec: str, registered: Collection[str], kind: str, base: Path | None = None) -> Path | None:
    """None when `spec` is a name in `registered` (the registry's names; a warning names a file or folder of
    that name in `base`, default the working directory, that is not read); else the path it names: written as
    one (`looks_like_path`; `~` expanded, a relative one under `base`), or a bare name that is no registered
    `kind` but exists in `base`. A bare name that is neither is an `UnknownComponentError` listing the close
    registered names. Whether a path exists and is the right kind of file is the caller's to check."""
    folder = Path(".") if base is None else base
    expanded = os.path.expanduser(spec)
    path = Path(expanded) if os.path.isabs(expanded) else folder / expanded
    if spec in registered:
        warn_shadowed(kind, spec, path)
        return None
    if looks_like_path(spec) or path_exists(path):
        return path
    where = "the working directory" if base is None else repr(str(folder.resolve()))
    raise UnknownComponentError(
        kind, spec, registered, f"Nor is it a file or folder in {where}: a file is given by its path (e.g. './{spec}')"
    )


# ---- reading documents ---------------------------------------------------------------------------------
def read_text(
    path: str | os.PathLike[str], what: str, error: type[NAToolkitError], max_bytes: int = MAX_DOCUMENT_BYTES
) -> str:
    """The UTF-8 text of the regular file at `path`. A missing or unreadable file, a FIFO or device (which
    would block or never end), a file over `max_bytes`, or text that is not UTF-8 is one `error` naming
    `what` and the path."""
    p = Path(path)
    try:
        info = p.stat()
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {str(p)!r} is not a regular file (a folder, FIFO or device); give the path of a file")
    if info.st_size > max_bytes:
        raise error(f"{what} {str(p)!r} is {info.st_size:,} bytes, more than the {max_bytes:,} this toolkit reads")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {str(p)!r}: {exc.strerror or exc}") from None
    return decode_utf8(data, f"{what} {str(p)!r}", error)


def decode_utf8(data: bytes, what: str, error: type[NAToolkitError]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None


def parse_json(text: str | bytes, what: str, error: type[NAToolkitError]) -> Any:
    """`json.loads`, with malformed text, bad encoding and over-deep nesting as one `error`."""
    if isinstance(text, bytes):
        text = decode_utf8(text, what, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to be a document this toolkit reads") from None


def parse_toml(text: str, what: str, error: type[NAToolkitError]) -> dict[str, Any]:
    """`tomllib.loads`, with malformed text and over-deep nesting as one `error`."""
    if text.startswith("\ufeff"):  # invisible in an editor, it was said as "Invalid statement (at line 1, column 1)"
        raise error(
            f"{what} is not valid TOML: it starts with a UTF-8 byte-order mark (BOM), which TOML does not allow; "
            "save it as UTF-8 without BOM"
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply to be a document this toolkit reads") from None


def read_toml(path: str | os.PathLike[str], what: str, error: type[NAToolkitError]) -> dict[str, Any]:
    return parse_toml(read_text(path, what, error), f"{what} {str(path)!r}", error)


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """`write(tmp)` into a temporary file beside `path`, then rename it to `path`: a process killed while
    writing leaves the old file or none, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """`write_atomic` for a UTF-8 text."""
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def strict_json(value: Any) -> Any:
    """`value` with every float NaN or infinity as None: what the benchmarks print and write is strict JSON
    (a bare NaN is not JSON: `jq` and most parsers refuse it)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "shape", None) == ():
        return strict_json(value.item())  # a numpy scalar
    return value


def strict_json_text(value: Any, **kwargs: Any) -> str:
    """`value` as strict JSON text (`strict_json`; what is not JSON is written as its str)."""
    return json.dumps(strict_json(value), default=str, allow_nan=False, **kwargs)


# ---- what an existing file is, before a command writes over it ---------------------------------------------
#: the kinds of document the toolkit writes, as `document_kind` names them
DEVICE_PROFILE, PREDICTOR, ARCHITECTURE, HARDWARE_MODEL = (
    "device profile",
    "saved predictor",
    "architecture",
    "hardware model",
)
SEARCH_CONFIG, EXPORT_SIDECAR, LATENCY_DUMP = "search config", "export sidecar", "latency dump"


def with_article(noun: str) -> str:
    """'an architecture', 'a device profile': a document kind in a sentence."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def benchmark_result(name: str) -> str:
    """The kind of a `bench NAME --out` file."""
    return f"result of bench {name}"


def document_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind of toolkit document an existing .json or .toml file is, read from its content (a device
    profile, a saved predictor, an architecture, a hardware model, a search config, a benchmark result, an
    export's sidecar, a latency dump); None for any other file: another program's, a damaged one (or no
    regular file: `read_text`), one of another suffix. A command checks it before writing over a file
    (`cli._output.check_out`)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".toml"):
        return None
    try:
        parse = parse_json if suffix == ".json" else parse_toml
        data = parse(read_text(path, "document", NAToolkitError), "document", NAToolkitError)
    except NAToolkitError:
        return None
    return kind_of_document(data, suffix)


@contextmanager
def read_as(path: str | os.PathLike[str], kind: str, what: str, error: type[NAToolkitError]) -> Iterator[None]:
    """Reading `path` as a `kind` document inside: when that fails with `error` and the file is another toolkit
    document (`document_kind`: a device profile given as a search config, a search config as a hardware model),
    the error says so, not what reading it as `kind` tripped on ("not valid TOML", "schema_version: missing;
    add `schema_version = 1`", "unknown architecture field(s) [...]")."""
    try:
        yield
    except error:
        found = document_kind(path)
        if found is None or found == kind:
            raise
        raise error(f"{what} {str(path)!r} is {with_article(found)}, not {with_article(kind)}") from None


def read_document(
    path: str | os.PathLike[str], kind: str, what: str, error: type[NAToolkitError], read: Callable[..., Any]
) -> Any:
    """`read(path, what, error)` of a file that is to be a `kind` document, under `read_as`; a document that
    reads but is another kind (a hardware model given as a search config) is refused the same way."""
    with read_as(path, kind, what, error):
        doc = read(path, what, error)
        if kind_of_document(doc, Path(path).suffix.lower()) not in (None, kind):
            raise error("another kind")  # said by read_as
    return doc


def kind_of_document(data: Any, suffix: str) -> str | None:
    """`document_kind` of a document already parsed from a file of `suffix` (".json" or ".toml")."""
    if isinstance(data, list):
        return LATENCY_DUMP if data and all(isinstance(x, dict) and "truth_ms" in x for x in data) else None
    if not isinstance(data, dict):
        return None
    if suffix == ".toml":
        if "values_are" in data or "peak_flops_per_s" in data or "memory_bandwidth_bytes_per_s" in data:
            return HARDWARE_MODEL
        return SEARCH_CONFIG if {"seed_network", "dataset", "devices", "evaluations", "search"} & set(data) else None
    params = data.get("params")
    if isinstance(params, dict) and isinstance(params.get("benchmark"), str):
        return benchmark_result(params["benchmark"])
    for kind, matches in (
        (DEVICE_PROFILE, data.get("schema") == "na_toolkit.device_profile"),
        (PREDICTOR, data.get("kind") == "na_toolkit.predictor"),
        (ARCHITECTURE, "nodes" in data and "input_shape" in data),
        (EXPORT_SIDECAR, "arch_hash" in data and "toolkit_version" in data and "input" in data),
    ):
        if matches:
            return kind
    return None


#: entries of a folder looked at for `nearby_paths` (a huge folder is not listed in full for an error message)
NEARBY_ENTRIES_READ = 2000


def nearby_paths(path: Path, suffixes: tuple[str, ...] = (".npz",), folders: bool = True) -> list[str]:
    """Files of `suffixes` (and with `folders`, folders) beside `path` whose name is close to its name (a
    typo's 'img' for 'imgs', 'data' for 'data.npz', 'net.jsn' for 'net.json'), as `folder/name/` or
    `folder/name.npz`: what a path that names nothing may have meant."""
    import difflib
    import itertools

    folder = path.parent
    try:
        entries = list(itertools.islice(folder.iterdir(), NEARBY_ENTRIES_READ))
    except OSError:
        return []
    usable: dict[str, str] = {}
    for e in entries:
        if e.name.startswith(".") or e.name == path.name:
            continue
        if e.is_dir():
            if folders:
                usable.setdefault(e.name, os.path.join(str(e), ""))
        elif e.suffix.lower() in suffixes:
            usable.setdefault(e.name, str(e))
            usable.setdefault(e.stem, str(e))
    close = difflib.get_close_matches(path.name, list(usable), n=3, cutoff=0.6)
    return list(dict.fromkeys(usable[c] for c in close))
