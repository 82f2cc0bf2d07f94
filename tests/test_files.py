"""Every document reader refuses bad files with one toolkit error: text that is not UTF-8, nesting deep
enough to overflow the parser, a FIFO or device that would block or never end, a file that is too big."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import default_toolkit, layer_types
from na_toolkit.errors import ArchitectureError, ConfigError, DataError, HardwareError, ProfileError
from na_toolkit.files import read_text
from na_toolkit.ir.architecture import Architecture
from na_toolkit.predictors.base import Predictor
from na_toolkit.search.config import read_config_file
from na_toolkit.timemodels.hwmodel import read_hardware_model
from na_toolkit.timemodels.profile import DeviceProfile

READERS = {
    "config": (lambda p: read_config_file(p), ConfigError, "toml"),
    "architecture": (lambda p: Architecture.load(p, layer_types()), ArchitectureError, "json"),
    "hardware model": (lambda p: read_hardware_model(p), HardwareError, "toml"),
    "profile": (lambda p: DeviceProfile.load(p), ProfileError, "json"),
    "saved predictor": (lambda p: Predictor.load(p, default_toolkit()), DataError, "json"),
}


def _bad_files(tmp: Path, syntax: str) -> dict[str, Path]:
    files = {}
    latin = tmp / f"latin.{syntax}"
    latin.write_bytes(b'name = "caf\xe9"\n' if syntax == "toml" else b'{"name": "caf\xe9"}')
    files["not UTF-8"] = latin
    deep = tmp / f"deep.{syntax}"
    deep.write_text("x = " + "[" * 100_000 if syntax == "toml" else "[" * 100_000)
    files["nested too deeply|not valid"] = deep
    fifo = tmp / f"fifo.{syntax}"
    os.mkfifo(fifo)
    files["not a regular file"] = fifo
    files["not a regular file "] = Path("/dev/zero")
    files["not a regular file  "] = tmp
    return files


@pytest.mark.parametrize("kind", READERS)
def test_every_reader_refuses_bad_files_with_one_error(kind, tmp_path):
    read, error, syntax = READERS[kind]
    for expected, path in _bad_files(tmp_path, syntax).items():
        with pytest.raises(error, match=expected.strip()):
            read(path)


def test_oversized_documents_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(DataError, match="2,048 bytes, more than the 1,024"):
        read_text(big, "document", DataError, max_bytes=1024)
    assert read_text(big, "document", DataError, max_bytes=4096) == " " * 2048


def test_document_kind_reads_what_each_toolkit_file_is(tmp_path):
    """What `check_out` asks before a command writes over a file: the kind of document its content is,
    whatever its name; None for anything else (another program's JSON, a damaged file, another suffix)."""
    from conftest import REPO_ROOT
    from na_toolkit import files as F

    arch = tmp_path / "net.json"
    default_toolkit().seed("simple-cnn").save(arch)
    sidecar = tmp_path / "model.preprocessing.json"
    sidecar.write_text('{"arch_hash": "ab", "toolkit_version": "0.7.0", "input": {}}')
    dump = tmp_path / "dump.json"
    dump.write_text('[{"seed": "simple-cnn", "truth_ms": 0.1}]')
    for path, kind in (
        (REPO_ROOT / "profiles" / "example-cpu.json", F.DEVICE_PROFILE),
        (REPO_ROOT / "hwmodels" / "x86-cpu.toml", F.HARDWARE_MODEL),
        (REPO_ROOT / "examples" / "digits-cpu.toml", F.SEARCH_CONFIG),
        (REPO_ROOT / "benchmarks" / "controller-40.json", F.benchmark_result("controller")),
        (arch, F.ARCHITECTURE),
        (sidecar, F.EXPORT_SIDECAR),
        (dump, F.LATENCY_DUMP),
    ):
        assert F.document_kind(path) == kind, path
    others = {"a.json": '{"notes": 1}', "b.json": "{broken", "c.toml": "x = 1", "d.txt": '{"nodes": 0}', "e.json": "[]"}
    for name, text in others.items():
        (tmp_path / name).write_text(text)
        assert F.document_kind(tmp_path / name) is None, name
    assert F.document_kind(tmp_path / "missing.json") is None
    assert F.with_article("architecture") == "an architecture"
    assert F.with_article("hardware model") == "a hardware model"
