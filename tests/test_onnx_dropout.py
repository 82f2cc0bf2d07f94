"""Dropout survives `arch export` -> `arch import` (it used to come back as identity, changing the hash)."""

import numpy as np
import onnx
import onnxruntime as ort
import torch

from conftest import layer_types
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.onnx_import import from_onnx


def test_dropout_round_trips_through_onnx_with_its_rate_and_runs_as_identity(tmp_path):
    lt = layer_types()
    b = ArchitectureBuilder((3, 8, 8), layer_types=lt, name="drop")
    x = b.layer("conv2d", b.input, filters=4, kernel=3)
    x = b.layer("dropout", x, rate=0.3)
    x = b.layer("flatten", b.layer("global_avg_pool", x))
    arch = b.build(b.layer("linear", x, units=5))
    model = arch.to_torch().eval()
    path = tmp_path / "m.onnx"
    onnx.save(arch.to_onnx(model=model), str(path))
    back = from_onnx(path, layer_types=lt)
    assert [n.type for n in back.nodes] == [n.type for n in arch.nodes]
    assert back.hash == arch.hash and back.attrs(back.nodes[1].id)["rate"] == 0.3
    # at inference the ONNX Dropout is the identity, as the torch module in eval mode
    inp = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: inp})
    with torch.no_grad():
        ref = model(torch.from_numpy(inp)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
