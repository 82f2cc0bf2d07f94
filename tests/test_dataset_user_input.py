"""A user's own data: what the toolkit says when a dataset name or path names nothing (the names and paths it
could have meant), a ready Dataset's layout, resize to (H, W)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import default_toolkit, run_na_toolkit
from na_toolkit.datasets import dataset_from_image_folder, get_dataset
from na_toolkit.errors import ConfigError, DataError, UnknownComponentError
from na_toolkit.evaluation.torch_trainer import TorchEvaluator


def write_image_folder(root, classes=("cat", "dog"), per_class=3, size=(6, 10)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def test_a_name_typo_suggests_the_folder_and_npz_file_it_may_have_meant(tmp_path, monkeypatch):
    # 'img' with a folder 'imgs' in the working folder got only "unknown dataset 'img'. Known: digits, mnist-5k"
    write_image_folder(tmp_path / "imgs")
    np.savez(tmp_path / "bands.npz", x=np.zeros((4, 1, 2, 2)), y=np.arange(4) % 2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownComponentError) as info:
        get_dataset("img", default_toolkit().datasets)
    assert "did you mean the path 'imgs/'?" in str(info.value) and "digits" in str(info.value)
    with pytest.raises(UnknownComponentError, match=r"did you mean the path 'bands.npz'"):
        get_dataset("bands", default_toolkit().datasets)  # the .npz without its suffix
    with pytest.raises(UnknownComponentError, match=r"Did you mean 'digits'\?.*Nor is it a file or folder"):
        get_dataset("digit", default_toolkit().datasets)
    # a path that does not exist: its neighbours; without a registry, the same hint
    with pytest.raises(DataError, match=r"'imgs/ct' does not exist.*did you mean the path 'imgs/cat/'\?"):
        get_dataset("imgs/ct", default_toolkit().datasets)
    with pytest.raises(DataError, match=r"no dataset registry.*did you mean the path 'imgs/'\?"):
        get_dataset("img", None)


def test_resize_takes_height_and_width_in_a_config_the_api_and_the_cli(tmp_path):
    # `resize` was square only (the evaluator's option an int, the CLI's --resize PX)
    folder = write_image_folder(tmp_path / "parts")
    evaluator = TorchEvaluator.from_toolkit(default_toolkit(), dataset=str(folder), resize=[4, 7])  # a TOML list
    assert evaluator.load_dataset().input_shape == (3, 4, 7)
    assert get_dataset(folder, None, resize=(5, 3)).input_shape == (3, 5, 3)
    assert TorchEvaluator(dataset=str(folder), resize=9).load_dataset().input_shape == (3, 9, 9)
    for bad in ([0, 4], [4, 4, 4], [4.0, 4], "32", True, 5000):
        with pytest.raises(ConfigError, match=r"evaluator.options.resize: .*PX \(a square\) or \(height, width\)"):
            TorchEvaluator(dataset=str(folder), resize=bad)
    with pytest.raises(DataError, match="each an int in 1..4096; got"):
        dataset_from_image_folder(folder, resize=(4, -1))
    out = run_na_toolkit("datasets", folder, "--resize", "6x11", "--json")
    assert out.json()["datasets"][0]["descriptor"]["input_shape"] == [3, 6, 11]
    refused = run_na_toolkit("datasets", folder, "--resize", "6x0")
    assert refused.returncode == 2 and "argument --resize: '6x0'" in refused.stderr
