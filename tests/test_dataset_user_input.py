"""A user's own data: what the toolkit says when a dataset name or path names nothing (the names and paths it
could have meant), a ready Dataset's layout, resize to (H, W)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from conftest import default_toolkit, run_na_toolkit
from na_toolkit.datasets import Dataset, DatasetSource, dataset_from_arrays, dataset_from_image_folder, get_dataset
from na_toolkit.errors import ConfigError, DataError, ShadowedPathWarning, UnknownComponentError
from na_toolkit.evaluation.torch_trainer import TorchEvaluator
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.search.config import load_config, resolve_config


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


def ready(shape, layout=None):
    rng = np.random.default_rng(5)
    parts = {}
    for part, n in (("train", 20), ("valid", 6), ("test", 6)):
        parts[f"x_{part}"] = rng.random((n, *shape)).astype(np.float32)
        parts[f"y_{part}"] = np.arange(n) % 2
    return Dataset(name="bands", class_names=("a", "b"), layout=layout, **parts)


def test_a_ready_dataset_says_it_is_channels_first_with_8_channels_or_channels_last():
    # (N, 8, 8, 3) that really is C=8, H=8, W=3 was refused as "looks channels-last" with no way to say otherwise
    with pytest.raises(DataError, match=r"looks channels-last.*Dataset\(\.\.\., layout='NCHW'\) if it really has 8"):
        DatasetSource("bands", "", lambda: ready((8, 8, 3))).load()
    with pytest.raises(DataError, match=r"the Dataset holds x_train of shape \(20, 8, 8, 3\).*layout='NHWC'"):
        get_dataset(ready((8, 8, 3)), None)  # the library API refuses it the same way (it was trained as is)
    chw = ready((8, 8, 3), layout="NCHW")
    assert DatasetSource("bands", "", lambda: chw).load() is chw and get_dataset(chw, None) is chw
    relaid = dataclasses.replace(ready((8, 8, 3)), layout="NCHW")  # a Dataset made elsewhere
    assert TorchEvaluator(dataset=relaid).load_dataset().input_shape == (8, 8, 3)
    hwc = ready((8, 8, 3), layout="NHWC")  # transposed: (N, 3, 8, 8), and said so
    assert hwc.input_shape == (3, 8, 8) and hwc.layout == "NCHW"
    assert np.array_equal(hwc.x_valid[0].transpose(1, 2, 0), ready((8, 8, 3)).x_valid[0])
    assert get_dataset(hwc, None) is hwc
    with pytest.raises(DataError, match="layout must be 'NCHW' or 'NHWC', got 'CHW'"):
        ready((8, 8, 3), layout="CHW")
    # arrays said to be NCHW keep saying so through the split: the Dataset they give is not refused later
    split = dataset_from_arrays("bands", np.zeros((20, 8, 8, 3)), np.arange(20) % 2, layout="NCHW").load()
    assert get_dataset(split, None).input_shape == (8, 8, 3)


def test_what_a_user_gets_wrong_bringing_an_npz_or_npy_is_told_how_to_fix(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8), np.array(["cat", "dog", "bird"] * 4)
    # a channels-last .npz named in a config or --dataset: the fix is in the file, and the error writes it out
    np.savez(tmp_path / "hwc.npz", x=x, y=y)
    with pytest.raises(DataError, match=r"add it to the file: np.savez\('.*hwc.npz', x=x, y=y, layout='NHWC'\)"):
        get_dataset(tmp_path / "hwc.npz", None)
    np.savez(tmp_path / "hwc.npz", x=x, y=y, layout="NHWC")
    assert get_dataset(tmp_path / "hwc.npz", None).input_shape == (3, 16, 16)
    # other array names: said once ('cannot read dataset file ...: ... lacks' wrapped our own message again)
    np.savez(tmp_path / "keys.npz", images=x, labels=y)
    with pytest.raises(DataError) as info:
        get_dataset(tmp_path / "keys.npz", None)
    assert str(info.value).startswith(f"{str(tmp_path / 'keys.npz')!r} lacks array(s) x, y (it holds: images, labels)")
    # an .npy holds one array: save both in an .npz
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(DataError, match=r"is an .npy file, which holds one array.*np.savez\('.*x.npz', x=images"):
        get_dataset(tmp_path / "x.npy", None)
    # '~' is the user's home, as a shell reads it (it was 'does not exist'), from the API and in a config
    monkeypatch.setenv("HOME", str(tmp_path))
    assert get_dataset("~/hwc.npz", None).input_shape == (3, 16, 16)
    doc = {"seed_network": "simple-cnn", "dataset": "~/hwc.npz", "evaluations": 2, "output": str(tmp_path / "r")}
    config = resolve_config(load_config(doc, base_dir=tmp_path / "r"), default_toolkit())
    assert config.dataset == str((tmp_path / "hwc.npz").resolve())


def test_a_folder_of_splits_and_16_bit_images_are_told_apart_from_an_image_folder(tmp_path):
    # split/train/cat: 'class folder split/train holds no images ... remove it or add images' pointed nowhere
    write_image_folder(tmp_path / "split" / "train")
    write_image_folder(tmp_path / "split" / "val")
    with pytest.raises(DataError, match=r"holds folders \(cat, dog\), not images: .* looks like a folder of splits"):
        get_dataset(tmp_path / "split", None)
    assert get_dataset(tmp_path / "split" / "train", None).class_names == ("cat", "dog")
    # 16-bit grey PNGs were read clipped at 255 (a mean near 1, the images gone) without a word
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (tmp_path / "deep" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 65535, (6, 6), dtype=np.uint16)).save(tmp_path / "deep" / c / f"{i}.png")
    for mode in ("auto", "L"):
        with pytest.raises(DataError, match=r"more than 8 bits per pixel \(Pillow mode I(;16)?\).*clip at 255"):
            dataset_from_image_folder(tmp_path / "deep", mode=mode).load()


def test_a_network_built_for_another_size_is_told_the_resize_that_fits_an_image_folder(tmp_path):
    folder = write_image_folder(tmp_path / "parts")  # 6x10 RGB images
    b = ArchitectureBuilder((3, 16, 12), layer_types=default_toolkit().layer_types, name="mine")
    net = b.build(b.layer("linear", b.layer("flatten", b.layer("global_avg_pool", b.input)), units=2))
    with pytest.raises(DataError, match=r"has input shape \(3, 6, 10\).*option resize = \[16, 12\] \(--resize 16x12\)"):
        TorchEvaluator(dataset=str(folder)).check(net)
    TorchEvaluator(dataset=str(folder), resize=[16, 12]).check(net)  # what it says fits
    # arrays cannot be resized: no such advice
    arrays = dataset_from_arrays("a", np.zeros((8, 3, 6, 10)), np.arange(8) % 2).load()
    # a network imported from torch is imported again for the data's shape (the persona's seed at 32x32)
    tail = r"build the network for the dataset's shape \(from torch: from_torch\(model, torch.zeros\(1, 3, 6, 10\)"
    with pytest.raises(DataError, match=tail + r", layer_types\)\)$"):
        TorchEvaluator(dataset=arrays).check(net)


def test_one_hot_labels_are_told_to_become_class_indices():
    x, labels = np.zeros((6, 1, 2, 2)), np.arange(6) % 3
    with pytest.raises(DataError, match=r"got shape \(6, 3\); they look one-hot: give y.argmax\(axis=1\)"):
        dataset_from_arrays("a", x, np.eye(3)[labels])
    with pytest.raises(DataError, match=r"got shape \(6, 2\)$"):  # not one-hot: no such guess
        dataset_from_arrays("a", x, np.ones((6, 2)))
    assert dataset_from_arrays("a", x, np.eye(3)[labels].argmax(axis=1)).load().classes == 3


def test_the_demo_searches_a_users_image_folder_of_3_classes_and_mixed_sizes(tmp_path):
    # `na-toolkit demo --dataset FOLDER` stopped at 'the seed outputs (10,), FOLDER has 3 classes', and a folder of
    # mixed sizes was told to pass --resize, which the demo did not have
    from na_toolkit.search.demo import run_demo

    folder = write_image_folder(tmp_path / "parts", classes=("a", "b", "c"), per_class=6)
    Image.new("RGB", (14, 9)).save(folder / "a" / "odd.png")  # another size
    result = run_demo(tmp_path / "runs", evaluations=1, dataset=str(folder), resize=(8, 12), progress=False, echo=str)
    assert result.counters.evaluations == 1
    (evaluated,) = result.evaluated
    arch = evaluated.candidate.arch
    assert arch.input_shape == (3, 8, 12) and arch.output_shape == (3,) and evaluated.error is None
    assert "--resize" in run_na_toolkit("demo", "--help").stdout


@pytest.mark.parametrize(
    ("y", "said"),
    [
        (np.array([0.0, 1.0, 2.0, 1.0]), "got dtype float64; they are whole numbers: give y.astype(np.int64)"),
        (np.array([1, 2, 3, 2]), "got labels 1..3: they look 1-based; give y - 1"),
        (np.array([0, 1, 4, 1]), "got labels 0..4: give 5 class names, or drop the labels from 3 on"),
        (np.array([-1, 0, 2, 1]), "got labels -1..2: negative labels have no class"),
    ],
)
def test_labels_that_do_not_fit_the_class_names_say_what_they_are_and_how_to_fix_them(y, said):
    from na_toolkit.datasets.base import check_arrays

    x = np.zeros((4, 1, 4, 4), np.float32)
    with pytest.raises(DataError) as err:
        check_arrays("mine", x, y, class_names=["a", "b", "c"])
    assert str(err.value) == f"dataset 'mine': with 3 class names given, y must be ints in [0, 3), {said}"


def test_a_config_s_unknown_dataset_name_gets_its_suggestions_from_the_config_s_folder(tmp_path, monkeypatch):
    """A config's relative paths are read from its folder, so the paths a misspelt name may have meant are
    looked for there, not in the folder the search was started from (which has other folders)."""
    from na_toolkit.search.components import build_components
    from test_search_config import with_

    write_image_folder(tmp_path / "cfg" / "imgs")
    (tmp_path / "elsewhere" / "imgz_old").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load_config(with_("dataset", "imgz"), base_dir=tmp_path / "cfg")
    with pytest.raises(ConfigError) as info:
        build_components(config, default_toolkit())
    message = str(info.value)
    here = f"Nor is it a file or folder in '{tmp_path / 'cfg'}'"
    assert f"unknown dataset 'imgz'. Known: digits, mnist-5k. {here}" in message
    assert message.endswith(f"did you mean the path '{tmp_path / 'cfg' / 'imgs'}/'?")
    assert "imgz_old" not in message and "elsewhere" not in message


def test_a_search_refused_for_its_dataset_names_the_configs_folder_and_leaves_nothing_behind(tmp_path, run_cli):
    # before: "Nor is it a file or folder in '<cfg>/runs/small-2026...'", a run folder that never existed, and an
    # empty runs/ left where the config's output was to go
    import tomllib

    from test_search_config import with_

    (tmp_path / "cfg").mkdir()
    doc = {**with_("dataset", "digitz"), "output": "runs"}
    assert tomllib.loads(_toml(doc)) == doc
    (tmp_path / "cfg" / "search.toml").write_text(_toml(doc))
    line = run_cli("search", tmp_path / "cfg" / "search.toml", "--no-progress").error_line()
    assert "unknown dataset 'digitz'. Did you mean 'digits'?" in line
    assert line.endswith(f"Nor is it a file or folder in '{tmp_path / 'cfg'}'") and "runs" not in line
    assert sorted(p.name for p in (tmp_path / "cfg").iterdir()) == ["search.toml"]


def _toml(doc: dict, prefix: str = "") -> str:
    """A config dict of scalars, lists and tables as TOML (tables after the keys, as TOML wants)."""
    import json

    keys = [f"{k} = {json.dumps(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    tables = [f"[{prefix}{k}]\n" + _toml(v, f"{prefix}{k}.") for k, v in doc.items() if isinstance(v, dict)]
    return "\n".join(keys) + "\n" + "".join(tables)


def test_a_registered_name_is_the_dataset_though_a_folder_of_that_name_is_in_the_way(tmp_path, monkeypatch):
    """A folder `digits/` in the working directory stood in for the registered digits wherever no registry was
    at hand (a torch evaluator built without a toolkit trained on the folder's 2 classes), and with a registry
    it was silently passed over. The registered name is the dataset, a warning says how to read the folder
    (`./digits`), and without a registry a bare name is refused, not read from the working directory."""
    write_image_folder(tmp_path / "digits", per_class=4, size=(8, 8))
    write_image_folder(tmp_path / "cfg" / "digits", per_class=4, size=(8, 8))
    monkeypatch.chdir(tmp_path)
    registry = default_toolkit().datasets
    with pytest.warns(ShadowedPathWarning) as caught:
        assert get_dataset("digits", registry).classes == 10
    assert "dataset 'digits' is the registered dataset of that name, not the folder 'digits'" in str(caught[0].message)
    assert "write it as a path: './digits'" in str(caught[0].message)
    assert get_dataset("./digits", registry).classes == 2  # written as a path: the folder
    assert TorchEvaluator.from_toolkit(default_toolkit(), dataset="digits").load_dataset().classes == 10
    with pytest.raises(DataError, match=r"'digits' is a bare name.*no dataset registry.*write './digits'"):
        TorchEvaluator(dataset="digits").load_dataset()
    assert TorchEvaluator(dataset="./digits").load_dataset().classes == 2
    with pytest.raises(DataError, match=r"'digits' is not one: leave it out \(the registered dataset; .*'./digits'"):
        get_dataset("digits", registry, resize=8)
    # a search config: its folder's digits/ is read as ./digits, the name is the registered dataset
    from test_search_config import with_

    with pytest.warns(ShadowedPathWarning) as caught:
        named = resolve_config(load_config(with_("dataset", "digits"), base_dir=tmp_path / "cfg"), default_toolkit())
    assert named.dataset == "digits" and str(tmp_path / "cfg" / "digits") in str(caught[0].message)
    pathed = resolve_config(load_config(with_("dataset", "./digits"), base_dir=tmp_path / "cfg"), default_toolkit())
    assert pathed.dataset == str(tmp_path / "cfg" / "digits")


# ---- a user's own arrays, as a new user brings them (an audit's findings) -----------------------------------
def _images(n=40, shape=(1, 8, 8)):
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


@pytest.mark.parametrize(
    ("y", "said"),
    [  # before: "nan" became a class of one sample; continuous targets, 40 one-sample classes
        (np.r_[np.nan, np.arange(39) % 4.0], r"y holds 1 NaN or infinite label\(s\) \(the first at index 0\)"),
        (np.r_[np.arange(39) % 4.0, np.inf], r"y holds 1 NaN or infinite label\(s\) \(the first at index 39\)"),
        (np.random.default_rng(1).random(40), r"y holds 40 distinct fractional values for 40 samples, which look like"),
    ],
)
def test_labels_that_are_no_classes_are_refused(y, said):
    with pytest.raises(DataError, match=said):
        dataset_from_arrays("mine", _images(), y)
    assert dataset_from_arrays("ok", _images(), np.arange(40) % 4 + 1.0).load().classes == 4  # whole floats: fine


def test_class_names_given_twice_are_refused():
    with pytest.raises(DataError, match=r"class name\(s\) \['cat'\] given twice"):
        dataset_from_arrays("pets", _images(), np.arange(40) % 2, class_names=["cat", "cat"])


@pytest.mark.parametrize("shape", [(16, 16, 2), (32, 32, 13), (4, 4, 3)])
def test_channels_last_images_of_any_channel_count_are_not_read_channels_first(shape):
    # before: (N, 16, 16, 2) was read as 16 channels of 16x2 images, and trained on in silence
    x = _images(shape=shape)
    with pytest.raises(DataError, match=r"looks channels-last \(N, H, W, C\)"):
        dataset_from_arrays("bands", x, np.arange(40) % 2)
    ds = dataset_from_arrays("bands", x, np.arange(40) % 2, layout="NHWC").load()
    assert ds.input_shape == (shape[2], shape[0], shape[1])
    assert dataset_from_arrays("c", _images(shape=(3, 16, 16)), np.arange(40) % 2).load().input_shape == (3, 16, 16)


def test_an_npz_saved_again_is_read_again(tmp_path):
    # before: the first file's dataset was kept for the process: a search or evaluation trained on stale data
    path = tmp_path / "d.npz"
    np.savez(path, x=_images(), y=np.arange(40) % 2)
    assert get_dataset(str(path), None).classes == 2
    np.savez(path, x=_images(90), y=np.arange(90) % 3)
    assert get_dataset(str(path), None).classes == 3


def test_a_3d_x_said_to_be_channels_last_records_no_transpose():
    raw = dataset_from_arrays("g", _images(shape=(8, 8)), np.arange(40) % 2, layout="NHWC").load().raw_input
    assert "transpose" not in raw.description


def test_a_validation_split_no_class_can_fill_says_why_and_what_helps():
    # before: "raise the evaluator's valid_fraction", which cannot help: a class of 2 gives validation nothing
    ev = TorchEvaluator(dataset=dataset_from_arrays("pairs", _images(200), np.repeat(np.arange(100), 2)), epochs=1)
    arch = default_toolkit().seed("simple-cnn")
    with pytest.raises(DataError, match=r"each of its 100 classes has at most 2 samples.*give more samples per class"):
        ev.check(arch)


def test_a_network_on_flat_features_is_told_to_put_a_flatten_first():
    # before: the hint said to import it with an image-shaped input, which then failed ("linear needs a vector")
    b = ArchitectureBuilder((64,), name="mlp", layer_types=default_toolkit().layer_types)
    b.layer("linear", b.layer("relu", b.layer("linear", b.input, units=32)), units=2)
    ev = TorchEvaluator(dataset=dataset_from_arrays("flat", _images(shape=(1, 1, 64)), np.arange(40) % 2), epochs=1)
    with pytest.raises(DataError, match=r"takes flat vectors of 64 features.*nn.Sequential\(nn.Flatten\(\), model\)"):
        ev.check(b.build())
