"""Malformed inputs for `na-toolkit bench fuzz`: each case is a mutation of a real, valid file.

A mutation works on the bytes (truncation, wrong encodings, NUL bytes, flipped bytes), on the parsed document
(a value at a random place replaced by a huge, negative, NaN, boolean or wrongly typed one, a key removed or
added, sections swapped, deep nesting), on the file itself (a FIFO, /dev/zero, a folder) or, for the kinds
that name one, on a field known to matter (`targeted`: `schema_version = true`, an input shape of
1x1e9x1e9...). A case says whether its input is invalid by construction (`invalid`): only those count as a
wrong accept when the command exits 0; a random mutation may leave a file valid, and then exit 0 is fine.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the special files a case may be instead of a regular one
SPECIAL_FILES = ("fifo", "dev_zero", "directory")
#: nesting depth of the deeply nested values: far past the parsers' recursion limits
DEEP_NESTING = 100_000
_DEEP = "__fuzz_deep__"


@dataclass(frozen=True)
class Mutant:
    """One mutated input: its bytes (or a special file), the mutation's name and whether it is invalid by
    construction."""

    mutation: str
    data: bytes = b""
    special: str | None = None
    invalid: bool = True


#: a targeted mutation: (name, the document changed in place) on a deep copy of the valid document
Targeted = Callable[[Any, random.Random], str]


# ---- values ---------------------------------------------------------------------------------------------
def bad_values(rng: random.Random, syntax: str) -> list[tuple[str, Any]]:
    """Replacement values, each named. TOML has no null; JSON gets NaN and infinities as Python writes them."""
    values: list[tuple[str, Any]] = [
        ("huge_int", 10**30),
        ("int_2^63", 2**63),
        ("negative", -rng.randint(1, 10**6)),
        ("zero", 0),
        ("min_int64", -(2**63)),
        ("nan", math.nan),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("float", rng.uniform(-1e6, 1e6)),
        ("true", True),
        ("false", False),
        ("string", "fuzz"),
        ("empty_string", ""),
        ("long_string", "x" * rng.choice((300, 5_000, 100_000))),
        ("nul_string", "a\x00b"),
        ("empty_list", []),
        ("list", [1, "a", None] if syntax == "json" else [1, "a"]),
        ("empty_object", {}),
        ("object", {"fuzz": 1}),
        ("nested_100", _nest(100)),
    ]
    if syntax == "json":
        values.append(("null", None))
    return values


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# ---- document paths -------------------------------------------------------------------------------------
Path_ = tuple[Any, ...]


def all_paths(doc: Any, limit: int = 20_000) -> list[Path_]:
    """Every path to a value in `doc` (keys and list indices), breadth first, at most `limit`."""
    out: list[Path_] = []
    queue: list[tuple[Path_, Any]] = [((), doc)]
    while queue and len(out) < limit:
        path, value = queue.pop(0)
        children: list[tuple[Any, Any]] = []
        if isinstance(value, dict):
            children = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        for key, child in children:
            out.append((*path, key))
            queue.append(((*path, key), child))
    return out


def get_at(doc: Any, path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(doc: Any, path: Path_, value: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = value


def delete_at(doc: Any, path: Path_) -> None:
    del get_at(doc, path[:-1])[path[-1]]


def _name(path: Path_) -> str:
    return ".".join(str(k) for k in path) or "(root)"


# ---- serialisation --------------------------------------------------------------------------------------
def dump_json(doc: Any) -> bytes:
    text = json.dumps(doc, allow_nan=True)
    return text.replace(json.dumps(_DEEP), "[" * DEEP_NESTING + "]" * DEEP_NESTING).encode()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return "[" * DEEP_NESTING + "]" * DEEP_NESTING if value == _DEEP else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:  # TOML has no null: a bare word is a syntax error, which is what a null would be
        return "null"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def dump_toml(doc: dict[str, Any]) -> bytes:
    """A TOML text of `doc`: scalars and lists inline, tables (nested dicts) as [dotted."headers"]."""
    lines: list[str] = []

    def table(prefix: tuple[str, ...], value: dict[str, Any]) -> None:
        subs = [(k, v) for k, v in value.items() if isinstance(v, dict) and v]
        if prefix:
            lines.append("[" + ".".join(json.dumps(str(k)) for k in prefix) + "]")
        for k, v in value.items():
            if not (isinstance(v, dict) and v):
                lines.append(f"{json.dumps(str(k))} = {_toml_value(v)}")
        for k, v in subs:
            table((*prefix, str(k)), v)

    table((), doc)
    return ("\n".join(lines) + "\n").encode()


# ---- mutations ------------------------------------------------------------------------------------------
def byte_mutation(rng: random.Random, data: bytes, syntax: str) -> Mutant:
    """A mutation of the raw bytes. Only for text documents is every one of these invalid by construction
    (a prefix of a JSON object is never a JSON object; TOML may survive a cut at a line end)."""
    text_kind = syntax in ("json", "toml", "jsonl")
    choice = rng.randrange(9)
    if choice == 0:  # truncation at a random byte
        cut = rng.randrange(len(data))
        invalid = syntax == "json" and data[:cut].strip() != data.strip()
        return Mutant(f"truncate@{cut}", data[:cut], invalid=invalid or cut == 0)
    if choice == 1:  # a non-ASCII character saved as Latin-1 (or a lone 0xff in a binary file)
        pos = rng.randrange(len(data) + 1)
        return Mutant("latin1_byte", data[:pos] + b"\xe9" + data[pos:], invalid=text_kind)
    if choice == 2:
        return Mutant("utf16", data.decode("latin-1").encode("utf-16"), invalid=True)
    if choice == 3:  # a NUL byte in the text
        pos = rng.randrange(len(data) + 1)
        return Mutant("nul_byte", data[:pos] + b"\x00" + data[pos:], invalid=text_kind)
    if choice == 4:  # random bytes flipped
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return Mutant("flip_bytes", bytes(out), invalid=False)
    if choice == 5:
        return Mutant("empty", b"", invalid=True)
    if choice == 6:
        return Mutant("garbage", rng.randbytes(rng.randint(16, 4096)), invalid=True)
    if choice == 7:  # a slice cut out of the middle
        a = rng.randrange(len(data))
        b = min(len(data), a + rng.randint(1, 64))
        return Mutant(f"cut_{a}_{b}", data[:a] + data[b:], invalid=False)
    special = rng.choice(SPECIAL_FILES)
    return Mutant(special, special=special, invalid=True)


def document_mutation(rng: random.Random, doc: Any, syntax: str, fixed: frozenset[Path_] = frozenset()) -> Mutant:
    """A mutation of the parsed document, written back in its syntax. Random places: the result may still be
    valid (a changed `description`), so `invalid` is False except for deep nesting, which every reader
    refuses. `fixed`: paths whose change is invalid by construction (e.g. `schema_version`)."""
    doc = copy.deepcopy(doc)
    paths = all_paths(doc)
    dump: Callable[[Any], bytes] = dump_json if syntax == "json" else dump_toml
    if not paths:
        return Mutant("whole_document_list", dump_json([doc]), invalid=True)
    path = rng.choice(paths)
    choice = rng.randrange(6)
    if choice == 0:
        delete_at(doc, path)
        return Mutant(f"delete:{_name(path)}", dump(doc), invalid=False)
    if choice == 1:  # an extra key in a random object
        objects = [p for p in [(), *paths] if isinstance(get_at(doc, p), dict)]
        target = rng.choice(objects)
        get_at(doc, target)["fuzz_extra_key"] = rng.choice([1, "x", [1]])
        return Mutant(f"extra_key:{_name(target)}", dump(doc), invalid=False)
    if choice == 2:  # two values of one object swapped (e.g. two sections)
        parent = path[:-1]
        obj = get_at(doc, parent)
        siblings = list(obj) if isinstance(obj, dict) else []
        if len(siblings) >= 2:
            a, b = rng.sample(siblings, 2)
            obj[a], obj[b] = obj[b], obj[a]
            return Mutant(f"swap:{_name((*parent, a))}<->{b}", dump(doc), invalid=False)
    if choice == 3:
        set_at(doc, path, _DEEP)
        return Mutant(f"deep_nesting:{_name(path)}", dump(doc), invalid=True)
    name, value = rng.choice(bad_values(rng, syntax))
    set_at(doc, path, value)
    return Mutant(f"{name}:{_name(path)}", dump(doc), invalid=path in fixed)


def targeted_mutation(rng: random.Random, doc: Any, syntax: str, targeted: list[Targeted]) -> Mutant:
    """One of the kind's mutations that make the document invalid by construction."""
    doc = copy.deepcopy(doc)
    name = rng.choice(targeted)(doc, rng)
    return Mutant(name, dump_json(doc) if syntax == "json" else dump_toml(doc), invalid=True)


def mutate_text(
    rng: random.Random, data: bytes, syntax: str, targeted: list[Targeted], fixed: frozenset[Path_] = frozenset()
) -> Mutant:
    """A mutation of a JSON or TOML document: bytes, document or targeted, in about equal parts."""
    doc = json.loads(data) if syntax == "json" else __import__("tomllib").loads(data.decode())
    roll = rng.random()
    if roll < 0.35:
        return byte_mutation(rng, data, syntax)
    if roll < 0.7 or not targeted:
        return document_mutation(rng, doc, syntax, fixed)
    return targeted_mutation(rng, doc, syntax, targeted)


# ---- SQLite run stores ----------------------------------------------------------------------------------
_STORE_TEXT_COLUMNS = {
    "runs": ("config_json", "result_json", "status"),
    "evaluations": ("arch_json", "metrics_json", "result_json", "arch_hash"),
    "measurements": ("estimate_json", "device"),
    "checkpoints": ("blob", "format"),
    "artifacts": ("doc_json",),
    "predictor_data": ("value",),
}


def _record_value(rng: random.Random, old: Any) -> tuple[str, Any]:
    text = old.decode("latin-1") if isinstance(old, bytes) else str(old)
    options: list[tuple[str, Any]] = [
        ("truncated", text[: rng.randrange(max(1, len(text)))]),
        ("null", None),
        ("not_json", "{not json"),
        ("json_list", "[1, 2]"),
        ("json_number", "1e999"),
        ("json_nan", "NaN"),
        ("json_deep", "[" * DEEP_NESTING + "]" * DEEP_NESTING),
        ("wrong_type", 12345),
        ("blob", b"\x80\x02garbage"),
        ("latin1", text.encode("latin-1", "replace")[:64] + b"\xe9"),
        ("empty_object", "{}"),
    ]
    return rng.choice(options)


#: record mutations that leave the run's own record undecodable: every command that opens the run refuses them
_BROKEN_TEXT = frozenset({"truncated", "not_json", "json_deep", "latin1", "blob", "json_list", "json_number"})


def mutate_store(rng: random.Random, path: Path) -> tuple[str, bool]:
    """Changes the SQLite store at `path` in place (a copy of a real one); returns the mutation's name and
    whether it is invalid by construction. Record changes keep the file a sound database: what the toolkit
    must refuse is what its rows hold."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big") or 4096
    roll = rng.randrange(9)
    if roll == 0:
        cut = rng.randrange(len(data))
        path.write_bytes(data[:cut])
        return f"truncate@{cut}", cut < 100  # the 100-byte header gone: not a database
    if roll == 1:  # a page overwritten with garbage (a torn write)
        page = rng.randrange(max(1, len(data) // page_size))
        out = bytearray(data)
        out[page * page_size : (page + 1) * page_size] = rng.randbytes(page_size)
        path.write_bytes(bytes(out))
        return f"garbage_page_{page}", page == 0
    if roll == 2:
        out = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        path.write_bytes(bytes(out))
        return "flip_bytes", False
    conn = sqlite3.connect(path)
    invalid = False
    try:
        if roll == 3:
            key = rng.choice(["schema_version", "run_id"])
            value = rng.choice(["true", "999", "", "../../x", "1.0"])
            conn.execute("UPDATE meta SET value=? WHERE key=?", (value, key))
            name = f"meta:{key}={value!r}"
            invalid = True
        elif roll == 8:  # a checkpoint that is a pickle of an object (torch.load with weights_only refuses it)
            blob = pickle.dumps(random.Random(rng.randrange(100)))
            conn.execute("UPDATE checkpoints SET format='torch', blob=?", (blob,))
            name = "pickle_checkpoint"
        elif roll == 4:
            table = rng.choice(list(_STORE_TEXT_COLUMNS))
            conn.execute(f"DELETE FROM {table}")
            name = f"delete_rows:{table}"
            invalid = table == "runs"
        else:
            table = rng.choice(list(_STORE_TEXT_COLUMNS))
            column = rng.choice(_STORE_TEXT_COLUMNS[table])
            rows = conn.execute(f"SELECT rowid, {column} FROM {table}").fetchall()
            if not rows:
                name = f"no_rows:{table}"
            else:
                rowid, old = rng.choice(rows)
                what, value = _record_value(rng, old)
                conn.execute(f"UPDATE {table} SET {column}=? WHERE rowid=?", (value, rowid))
                name = f"record:{table}.{column}:{what}"
                invalid = column in ("config_json", "result_json") and table == "runs" and what in _BROKEN_TEXT
        conn.commit()
    except sqlite3.DatabaseError as exc:  # e.g. a NOT NULL column: the mutation is the failed attempt
        name, invalid = f"refused_by_sqlite:{exc}", False
    finally:
        conn.close()
    return name, invalid


# ---- ONNX models ----------------------------------------------------------------------------------------
def mutate_onnx(rng: random.Random, data: bytes) -> Mutant:
    """A mutation of an ONNX model: of its bytes, of a random attribute (maybe still valid), or one that
    contradicts the graph (kernel_shape [5,5] over 3x3 weights, auto_pad "JUNK", a missing initializer, an
    absurd input shape...)."""
    import onnx
    from onnx import helper

    if rng.random() < 0.3:
        return byte_mutation(rng, data, "onnx")
    model = onnx.load_from_string(data)
    graph = model.graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    weights = {i.name: i for i in graph.initializer}

    def set_attr(node: Any, name: str, value: Any) -> None:
        for a in list(node.attribute):
            if a.name == name:
                node.attribute.remove(a)
        node.attribute.append(helper.make_attribute(name, value))

    choice = rng.randrange(12)
    invalid = True
    if choice == 0 and convs:
        conv = rng.choice(convs)
        w = weights.get(conv.input[1])
        k = 5 if w is None or list(w.dims[2:]) != [5, 5] else 3
        set_attr(conv, "kernel_shape", [k, k])
        name = f"kernel_shape_[{k},{k}]_vs_weights"
    elif choice == 1 and convs:
        set_attr(rng.choice(convs), "auto_pad", "JUNK")
        name = "auto_pad_JUNK"
    elif choice == 2 and convs:
        set_attr(rng.choice(convs), "strides", [0, 0])
        name = "strides_0"
    elif choice == 3 and convs:
        set_attr(rng.choice(convs), "pads", [-2, -2, -2, -2])
        name = "pads_negative"
    elif choice == 4 and convs:
        set_attr(rng.choice(convs), "group", rng.choice([0, -1, 7]))
        name = "group_bad"
    elif choice == 5:
        node = rng.choice(list(graph.node))
        node.op_type = "FuzzUnknownOp"
        name = "unknown_op"
    elif choice == 6 and graph.initializer:
        init = rng.choice(list(graph.initializer))
        graph.initializer.remove(init)
        name = f"drop_initializer:{init.name}"
    elif choice == 7:
        dims = graph.input[0].type.tensor_type.shape.dim
        values = rng.choice([[1, 3, 10**9, 10**9], [1, 3, -5, 32], [1, 0, 32, 32], [1, 3, 2**40, 1]])
        for d, v in zip(dims, values):
            d.dim_value = v
        name = f"input_shape_{values}"
    elif choice == 8 and graph.initializer:
        init = rng.choice([i for i in graph.initializer if len(i.dims) > 0] or list(graph.initializer))
        if len(init.dims):
            init.dims[0] += rng.randint(1, 5)
        else:
            init.dims.append(7)
        name = f"initializer_dims:{init.name}"
    elif choice == 9:
        graph.output[0].name = "fuzz_missing_output"
        name = "dangling_output"
    else:  # a random attribute changed or removed: may still be a valid model
        invalid = False
        nodes = [n for n in graph.node if n.attribute]
        if not nodes:
            return byte_mutation(rng, data, "onnx")
        node = rng.choice(nodes)
        attr = rng.choice(list(node.attribute))
        if rng.random() < 0.3:
            node.attribute.remove(attr)
            name = f"drop_attribute:{node.op_type}.{attr.name}"
        else:
            value: Any = rng.choice([0, 1, -1, 2**40, 3])
            if attr.type == onnx.AttributeProto.INTS:
                value = [value] * max(1, len(attr.ints))
            elif attr.type == onnx.AttributeProto.FLOAT:
                value = float(rng.choice([math.nan, -1.0, 1e30, 0.5]))
            elif attr.type == onnx.AttributeProto.STRING:
                value = rng.choice(["", "x" * 300, "NOTSET"])
            set_attr(node, attr.name, value)
            name = f"attribute:{node.op_type}.{attr.name}={str(value)[:20]}"
    return Mutant(name, model.SerializeToString(), invalid=invalid)
