import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from na_toolkit.ir.seeds import get_seed


@pytest.mark.parametrize("seed", ["simple-cnn", "resnet-cifar", "mobilenetv2-cifar"])
def test_seed_torch_onnx_parity(seed):
    arch = get_seed(seed)
    model = arch.to_torch().eval()
    proto = arch.to_onnx(model=model, batch_size=None)
    onnx.checker.check_model(proto)
    x = np.random.default_rng(0).standard_normal((2, *arch.input_shape)).astype(np.float32)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape == (2, 10)
    assert np.abs(got - want).max() <= 1e-4


def test_resnet20_cost_matches_the_paper():
    arch = get_seed("resnet-cifar")
    # He et al. 2016 report 0.27M parameters for ResNet-20; ~41M multiply-adds.
    assert 265_000 < arch.params < 280_000
    assert 40e6 < arch.cost.macs < 42e6
