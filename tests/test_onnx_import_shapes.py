"""ONNX import of a torch export without constant folding (the export that keeps batch norm, as
docs/cli.md says to write it): `x.view(x.size(0), -1)` becomes Shape -> Gather -> Unsqueeze -> Concat ->
Reshape, shape arithmetic the import folds (`na_toolkit.ir.onnx_shapes`), so the network imports with its
batch norm, computing what the module does."""

from __future__ import annotations

import io

import onnx
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import layer_types
from na_toolkit.errors import OnnxImportError
from na_toolkit.ir.onnx_import import from_onnx

# the files a user's own code writes with torch's TorchScript exporter (dynamo=False: the one docs/cli.md names,
# as the dynamo exporter needs onnxscript); torch deprecates it and warns, and the trace of a literal tensor warns
pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:torch.tensor results are registered as constants:torch.jit.TracerWarning"),
]


class ViewsBySize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.relu(self.bn(self.conv(x))), 1)
        return self.fc(x.view(x.size(0), -1))


def _export_keeping_batch_norm(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        model.eval(),
        (torch.randn(1, 3, 6, 6),),
        buf,
        dynamo=False,
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
        dynamic_axes={"input": {0: "batch"}},
        input_names=["input"],
    )
    return buf.getvalue()


def test_a_view_by_the_batch_size_imports_as_a_flatten():
    # before: "ONNX node '/Unsqueeze' (Unsqueeze): unsupported ONNX op 'Unsqueeze'", an op the user never wrote
    model = ViewsBySize().eval()
    data = _export_keeping_batch_norm(model)
    assert {"Shape", "Gather", "Unsqueeze", "Concat"} <= {n.op_type for n in onnx.load_from_string(data).graph.node}
    arch, state = from_onnx(data, layer_types(), return_weights=True)
    assert [n.type for n in arch.nodes] == ["conv2d", "batchnorm2d", "relu", "global_avg_pool", "flatten", "linear"]
    again = arch.to_torch().eval()
    again.load_state_dict(state)
    x = torch.randn(3, 3, 6, 6)  # another batch size than the export's
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)


class GathersAFeatureMap(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(F.relu(x), 1, torch.tensor([0, 2]))


def test_a_gather_of_a_computed_tensor_is_still_unsupported():
    with pytest.raises(OnnxImportError, match=r"\(Gather\): unsupported ONNX op 'Gather'"):
        from_onnx(_export_keeping_batch_norm(GathersAFeatureMap()), layer_types())


class SENetCode(nn.Module):
    """The SENet paper's code: b, c from x.size(), Linear layers, view(b, c, 1, 1), expand_as."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Sequential(nn.Linear(8, 2), nn.ReLU(inplace=True), nn.Linear(2, 8), nn.Sigmoid())
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        b, c, _, _ = x.size()
        y = self.fc(F.adaptive_avg_pool2d(x, 1).view(b, c)).view(b, c, 1, 1)
        x = x * y.expand_as(x)
        return self.head(F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1))


def test_a_squeeze_excitation_in_the_senet_papers_code_imports_as_one_node():
    # before: Unsqueeze unsupported; with it folded, the block's reshape targets (built after the pool that
    # starts the pattern) and its Expand to Shape(x) kept the pattern from matching
    model = SENetCode().eval()
    arch, state = from_onnx(_export_keeping_batch_norm(model), layer_types(), return_weights=True)
    assert [n.type for n in arch.nodes] == [
        *("conv2d", "relu", "squeeze_excitation", "global_avg_pool", "flatten", "linear")
    ]
    again = arch.to_torch().eval()
    again.load_state_dict(state)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)
