"""Arguments that take a registered name or a path (seeds, hardware models, device profiles, a config's path
options): a registered name is the component though a file of that name is in the way (a warning names the file
and says to write './NAME'), a path-looking reference is a path, a bare name that is neither registered nor on
disk is an error with the close registered names (na_toolkit.files)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import REPO_ROOT, default_toolkit
from na_toolkit.cli.arch import load_architecture
from na_toolkit.cli.evaluate import _architecture_for
from na_toolkit.cli.predict import _beside
from na_toolkit.datasets import dataset_from_arrays, get_dataset
from na_toolkit.errors import (
    ArchitectureError,
    ConfigError,
    HardwareError,
    ProfileError,
    ShadowedPathWarning,
    UnknownComponentError,
)
from na_toolkit.ir.seeds import seed_reference
from na_toolkit.search.config import load_config, resolve_config
from na_toolkit.timemodels.hwmodel import load_hardware_model
from na_toolkit.timemodels.profile import resolve_profile_path
from na_toolkit.timemodels.sampling import load_seed


@pytest.fixture
def in_the_way(tmp_path, monkeypatch):
    """A working directory holding `simple-cnn`, a file of resnet-cifar's architecture named like the seed."""
    toolkit = default_toolkit()
    toolkit.seed("resnet-cifar").save(tmp_path / "simple-cnn")
    monkeypatch.chdir(tmp_path)
    return toolkit


def _one_warning(caught, name: str, path: str) -> None:
    messages = [str(w.message) for w in caught if issubclass(w.category, ShadowedPathWarning)]
    assert len(messages) == 1, messages
    assert f"{name!r} is the registered" in messages[0] and f"not the file {path!r}" in messages[0]
    assert f"write it as a path: './{name}'" in messages[0]


def test_a_registered_seed_is_the_seed_though_a_file_of_that_name_is_in_the_way(in_the_way, tmp_path):
    """`na-toolkit arch/evaluate/demo/predict simple-cnn` read a file `simple-cnn` in the working directory in
    place of the registered seed; a search config's `seed_network`, a `--data` line and the benches' seeds took
    the seed silently. The registered name is the seed (one warning per file), `./simple-cnn` the file."""
    toolkit = in_the_way
    seed, other = toolkit.seed("simple-cnn"), toolkit.seed("resnet-cifar")
    with pytest.warns(ShadowedPathWarning) as caught:
        assert load_architecture("simple-cnn", toolkit).hash == seed.hash
        assert load_seed("simple-cnn", toolkit).hash == seed.hash
        assert seed_reference("simple-cnn", tmp_path, toolkit) == "simple-cnn"
    _one_warning(caught, "simple-cnn", "simple-cnn")  # once per file
    assert load_architecture("./simple-cnn", toolkit).hash == other.hash
    assert load_seed("./simple-cnn", toolkit).hash == other.hash
    # evaluate builds the seed for the data instead of reading the file
    data = get_dataset(dataset_from_arrays("tiny", np.zeros((12, 1, 8, 8), np.float32), np.arange(12) % 3), None)
    assert _architecture_for("simple-cnn", data, toolkit).output_shape == (3,)
    # a --data line's seed name stays a name with a file of that name beside the data file
    (tmp_path / "data").mkdir()
    shutil.copy(tmp_path / "simple-cnn", tmp_path / "data" / "simple-cnn")
    with pytest.warns(ShadowedPathWarning, match="data/simple-cnn"):
        assert _beside("simple-cnn", tmp_path / "data", toolkit) == "simple-cnn"
    assert _beside("mine.json", tmp_path / "data", toolkit) == str(tmp_path / "data" / "mine.json")


def test_a_misspelled_seed_says_did_you_mean_and_how_to_name_a_file(in_the_way, tmp_path):
    toolkit = in_the_way
    with pytest.raises(ArchitectureError) as info:
        load_architecture("simple-cn", toolkit)
    message = str(info.value)
    assert "unknown seed network 'simple-cn'. Did you mean 'simple-cnn'" in message and "'./simple-cn'" in message
    with pytest.raises(ConfigError, match=r"seed_network: unknown seed network 'simple-cn'.*'\./simple-cn'"):
        seed_reference("simple-cn", tmp_path, toolkit)
    with pytest.raises(UnknownComponentError, match=r"Did you mean 'simple-cnn'.*'\./simple-cn'"):
        load_seed("simple-cn", toolkit)
    # a bare name that is no seed but a file here is that file (a suffix-less one is no network for a config)
    shutil.copy(tmp_path / "simple-cnn", tmp_path / "mine")
    assert load_architecture("mine", toolkit).hash == toolkit.seed("resnet-cifar").hash
    with pytest.raises(ConfigError, match="seed_network: 'mine' is a file without a suffix, not a network"):
        seed_reference("mine", tmp_path, toolkit)


def test_hardware_models_and_profiles_follow_the_same_rule(tmp_path, monkeypatch):
    """A file `example-cpu` in the working directory stood in for the registered device profile; a bare name
    of a TOML file here that is no registered hardware model was refused as unknown."""
    hardware = default_toolkit().hardware
    x86 = REPO_ROOT / "hwmodels" / "x86-cpu.toml"
    text = x86.read_text(encoding="utf-8")
    for name in ("example-cpu", "x86-cpu", "mine"):
        (tmp_path / name).write_text(text.replace('name = "x86-cpu"', f'name = "{name}"'), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(ShadowedPathWarning) as caught:
        assert resolve_profile_path("example-cpu", hardware) == REPO_ROOT / "profiles" / "example-cpu.json"
    _one_warning(caught, "example-cpu", "example-cpu")
    with pytest.warns(ShadowedPathWarning) as caught:
        assert load_hardware_model("x86-cpu", hardware).name == "x86-cpu"
    _one_warning(caught, "x86-cpu", "x86-cpu")
    assert load_hardware_model("./x86-cpu", hardware).name == "x86-cpu"  # the file, read as a path
    assert load_hardware_model("mine", hardware).name == "mine"  # no registered model: the file here
    with pytest.raises(UnknownComponentError, match=r"Did you mean 'example-cpu'.*'\./example-cpux'"):
        resolve_profile_path("example-cpux", hardware)
    with pytest.raises(HardwareError, match=r"Did you mean 'h100-sxm'.*'\./h100-sx'"):
        load_hardware_model("h100-sx", hardware)
    # without a registry a bare name is refused, not read from the working directory
    with pytest.raises(ProfileError, match=r"a name is looked up in the toolkit's hardware registry.*'\./mine'"):
        resolve_profile_path("mine")
    with pytest.raises(HardwareError, match=r"write '\./mine'"):
        load_hardware_model("mine")
    assert resolve_profile_path("./mine").samefile(tmp_path / "mine")


def test_a_config_s_registered_names_win_over_files_beside_it_with_a_warning(tmp_path):
    """A search config's seed_network and a time model's device named like a file beside the config: the
    registered seed and hardware model, each file named in a warning (before: silently passed over)."""
    from test_search_config import GOOD

    for name in ("simple-cnn", "x86-cpu"):
        (tmp_path / name).write_text("{}", encoding="utf-8")
    with pytest.warns(ShadowedPathWarning) as caught:
        cfg = resolve_config(load_config(GOOD, base_dir=tmp_path), default_toolkit())
    assert cfg.seed_network == "simple-cnn" and cfg.devices[0].time_model.options["device"] == "x86-cpu"
    messages = " | ".join(str(w.message) for w in caught)
    assert "seed network 'simple-cnn' is the registered seed network of that name, not the file " in messages
    assert "hardware model 'x86-cpu' is the registered hardware model of that name, not the file " in messages
    assert str(tmp_path / "x86-cpu") in messages and "'./x86-cpu'" in messages


def test_the_cli_prints_the_warning_as_one_line(in_the_way, tmp_path, run_cli):
    shown = run_cli("arch", "show", "simple-cnn", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.json()["hash"] == in_the_way.seed("simple-cnn").hash
    assert (
        "na-toolkit: warning: seed network 'simple-cnn' is the registered seed network of that name, not the file "
        "'simple-cnn'; to use that, write it as a path: './simple-cnn'"
    ) in shown.stderr


def test_hw_show_s_misspelled_name_suggests_models_and_profiles(tmp_path, run_cli):
    """`hw show exmple-cpu` listed only the hardware models (no 'did you mean' for the profile it meant)."""
    line = run_cli("hw", "show", "exmple-cpu", cwd=tmp_path).error_line()
    assert "unknown hardware model or device profile 'exmple-cpu'. Did you mean 'example-cpu'" in line
    assert "a file is given by its path (e.g. './exmple-cpu')" in line
