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
