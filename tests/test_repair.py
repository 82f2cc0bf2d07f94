"""Repairing an approximately inherited start (na_toolkit.evaluation.repair): layer reconstruction from the
parent, batch-norm recalibration and the output layer's linear probe, on real torch modules and, through the
torch evaluator, real damaged children of simple-cnn trained on digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import default_toolkit
from na_toolkit.evaluation.inherit import ParentWeights, evaluate_with_parent
from na_toolkit.evaluation.repair import recalibrate_batchnorm, reconstruct_from_parent, refit_output_layer, repair
from na_toolkit.evaluation.torch_trainer import TorchEvaluator
from na_toolkit.moves import Move


def _blobs(n: int = 240, classes: int = 3, dim: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(classes, dim, generator=g)
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_recalibration_measures_what_reaches_each_batch_norm_and_restores_its_settings():
    torch.manual_seed(0)
    x = 3.0 + 2.0 * torch.randn(256, 4, 5, 5)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    model = nn.Sequential(conv, nn.BatchNorm2d(6, momentum=0.3), nn.ReLU())
    bn = model[1]
    bn.running_mean.fill_(100.0)  # stale statistics, as a move leaves them
    bn.running_var.fill_(1e-3)
    assert recalibrate_batchnorm(model, x, batch_size=64) == 1
    with torch.no_grad():
        pre = conv(x)
    # the plain average over 4 batches of 64: each batch's mean (equal batches: the overall mean) and
    # unbiased variance
    assert torch.allclose(bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-4)
    per_batch = torch.stack([pre[i : i + 64].var(dim=(0, 2, 3), unbiased=True) for i in range(0, 256, 64)])
    assert torch.allclose(bn.running_var, per_batch.mean(dim=0), rtol=1e-4)
    assert bn.momentum == 0.3 and not model.training
    assert recalibrate_batchnorm(nn.Sequential(nn.Linear(2, 2)), torch.zeros(4, 2), 2) == 0
    # one image has no variance: the statistics are left as they were, not reset
    kept = bn.running_mean.clone()
    assert recalibrate_batchnorm(model, x[:1], batch_size=64) == 0 and torch.equal(bn.running_mean, kept)


def test_the_linear_probe_refits_a_scrambled_head_and_keeps_a_better_one():
    x, y = _blobs()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        model[2].weight.normal_(0, 5)  # a head that reads its features wrongly
    before = float((model(x).argmax(1) == y).float().mean())
    assert refit_output_layer(model, x, y, batch_size=64) == ""
    after = float((model(x).argmax(1) == y).float().mean())
    assert after > 0.9 > before
    # a ridge that flattens the solution classifies fewer images than the head it would replace: kept
    kept = model[2].weight.clone()
    why = refit_output_layer(model, x, y, batch_size=64, ridge=1e9)
    assert "inherited layer classifies more" in why and torch.equal(model[2].weight, kept)


@pytest.mark.parametrize("samples", [200, 20])
def test_the_linear_probe_is_the_ridge_solution_with_more_images_or_more_features(samples):
    """Fewer images than features takes the dual system: the same ridge solution as the primal one."""
    x, y = _blobs(n=samples, dim=40)
    head = nn.Linear(40, 3)
    with torch.no_grad():
        head.weight.zero_()  # classifies nothing right: any refit is kept
        head.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    model = nn.Sequential(head)
    assert refit_output_layer(model, x, y, batch_size=16, ridge=1e-2) == ""
    design = torch.cat([x.double(), torch.ones(samples, 1, dtype=torch.float64)], dim=1)
    penalty = 1e-2 * float((design * design).sum()) / design.shape[1]
    gram = design.T @ design + penalty * torch.eye(design.shape[1], dtype=torch.float64)
    expected = torch.linalg.solve(gram, design.T @ nn.functional.one_hot(y, 3).double())
    assert torch.allclose(head.weight.double(), expected[:-1].T, atol=1e-5)
    assert torch.allclose(head.bias.double(), expected[-1], atol=1e-5)


def test_the_linear_probe_says_why_it_leaves_a_head_alone():
    x, y = _blobs()
    after_head = nn.Sequential(nn.Linear(6, 3), nn.Softmax(dim=1))  # the output is not the linear layer's
    kept = after_head[0].weight.clone()
    assert "not its last linear layer's" in refit_output_layer(after_head, x, y, 64)
    assert torch.equal(after_head[0].weight, kept)
    assert "no linear layer" in refit_output_layer(nn.Sequential(nn.Flatten()), x, y, 64)
    assert "outside the output layer's 2 units" in refit_output_layer(nn.Sequential(nn.Linear(6, 2)), x, y, 64)
    # no bias: the weights alone are refit
    bare = nn.Sequential(nn.Linear(6, 3, bias=False))
    assert refit_output_layer(bare, x, y, 64) == ""
    assert float((bare(x).argmax(1) == y).float().mean()) > 0.9


def test_repair_reads_a_seeded_subset_and_reports_it():
    x, y = _blobs(n=300)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    done = repair(model, x, y, batch_size=32, samples=100, seed=0)
    assert done.samples == 100 and done.batchnorms == 1 and done.to_json()["batchnorms"] == 1
    assert done.head_refit == (done.note == "")
    twin = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    twin.load_state_dict(model.state_dict())
    repair(model, x, y, batch_size=32, samples=100, seed=0)
    repair(twin, x, y, batch_size=32, samples=100, seed=0)  # the same subset: the same repair
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))
    assert repair(twin, x, y, batch_size=32, samples=1000, seed=0).samples == 300  # at most the split


class _Chain(nn.Module):
    """Modules in a `layers` ModuleDict run in order: the shape of an ArchitectureModule's forward pass."""

    def __init__(self, **layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleDict(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers.values():
            x = layer(x)
        return x


def _chain(seed: int) -> _Chain:
    torch.manual_seed(seed)
    return _Chain(
        a=nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2, bias=True),  # every unfold argument differs
        r=nn.ReLU(),
        b=nn.Conv2d(8, 4, 1, bias=False),
    )


def test_reconstruction_refits_the_first_drifted_conv_to_its_parent_and_leaves_the_rest():
    """A child whose first conv was scrambled: its least-squares refit on the child's own input is the parent's
    conv (the fit is exact up to the ridge), after which the next conv reads what it read in the parent and is
    left alone."""
    parent, child = _chain(0), _chain(0)
    with torch.no_grad():
        child.layers["a"].weight.normal_(0, 1)
        child.layers["a"].bias.fill_(3.0)
    kept = child.layers["b"].weight.clone()
    x = torch.randn(64, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    done = reconstruct_from_parent(child, parent, x, batch_size=16, ridge=1e-9, max_rows=2000)
    assert [r.node for r in done] == ["a"]
    assert done[0].error_before > 0.5 and done[0].error_after < 1e-4
    assert done[0].to_json() == {"node": "a", "error_before": done[0].error_before, "error_after": done[0].error_after}
    assert torch.allclose(child.layers["a"].weight, parent.layers["a"].weight, atol=1e-4)
    assert torch.allclose(child.layers["a"].bias, parent.layers["a"].bias, atol=1e-4)
    assert torch.equal(child.layers["b"].weight, kept)
    with torch.no_grad():
        assert torch.allclose(child(x), parent(x), atol=1e-4)
    # a child that already computes what its parent does: nothing to refit
    assert reconstruct_from_parent(child, parent, x, batch_size=16) == []
    # only the nodes the child shares with its parent are compared (an id reused by another node is not)
    other = _chain(0)
    with torch.no_grad():
        other.layers["a"].weight.normal_(0, 1)
    scrambled = other.layers["a"].weight.clone()
    assert [r.node for r in reconstruct_from_parent(other, parent, x, batch_size=16, nodes={"b", "r"})] == ["b"]
    assert torch.equal(other.layers["a"].weight, scrambled)  # not compared, so not refit


@pytest.mark.parametrize("groups", [2, 4])  # grouped, depthwise (two outputs per input channel)
def test_reconstruction_fits_a_grouped_or_depthwise_conv_group_by_group(groups):
    """Each output channel of a grouped conv reads only its group's input channels: the fit solves one system
    per group, and recovers the parent's grouped conv exactly, bias included."""

    def net(seed: int) -> _Chain:
        torch.manual_seed(seed)
        return _Chain(a=nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=groups), r=nn.ReLU())

    parent, child = net(0), net(0)
    with torch.no_grad():
        child.layers["a"].weight.normal_(0, 1)
        child.layers["a"].bias.fill_(-2.0)
    x = torch.randn(48, 4, 9, 9, generator=torch.Generator().manual_seed(3))
    done = reconstruct_from_parent(child, parent, x, batch_size=16, ridge=1e-9)
    assert [r.node for r in done] == ["a"] and done[0].error_after < 1e-4
    assert torch.allclose(child.layers["a"].weight, parent.layers["a"].weight, atol=1e-4)
    assert torch.allclose(child.layers["a"].bias, parent.layers["a"].bias, atol=1e-4)


def test_reconstruction_skips_what_it_cannot_fit_and_keeps_a_layer_a_refit_would_make_worse():
    x = torch.randn(32, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    parent, child = _chain(0), _chain(0)
    with torch.no_grad():  # drifted, but closer to the parent than zero weights are
        child.layers["a"].weight.mul_(1.3)
    kept = {k: v.clone() for k, v in child.state_dict().items()}
    # a ridge that flattens the solution fits worse than the weights it would replace: nothing changes
    assert reconstruct_from_parent(child, parent, x, batch_size=8, ridge=1e9) == []
    assert all(torch.equal(v, child.state_dict()[k]) for k, v in kept.items())
    # another output width: left alone
    wider = _Chain(a=nn.Conv2d(3, 6, 3), r=nn.ReLU(), b=nn.Conv2d(6, 5, 1))
    other = _Chain(a=nn.Conv2d(3, 6, 3), r=nn.ReLU(), b=nn.Conv2d(6, 4, 1))
    assert reconstruct_from_parent(wider, other, x, batch_size=8, tol=1e9) == []
    assert [r.node for r in reconstruct_from_parent(wider, other, x, batch_size=8)] == ["a"]
    # another output size (stride): not comparable, so not refit
    strided = _Chain(a=nn.Conv2d(3, 6, 3, stride=2), r=nn.ReLU(), b=nn.Conv2d(6, 4, 1))
    assert reconstruct_from_parent(strided, other, x, batch_size=8) == []
    # ... also when both grids are sampled down to the same number of positions
    assert reconstruct_from_parent(strided, other, x, batch_size=8, max_rows=32) == []


@pytest.fixture(scope="module")
def trained_simple_cnn():
    """simple-cnn trained 2 epochs on digits: evaluator options, and a function giving a child one move away
    and the `ParentWeights` it inherits from."""
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    base = {"datasets": tk.datasets, "epochs": 2, "inherit_epochs": 1, "threads": 1, "inherit_recovery_epochs": 1}
    result, state = TorchEvaluator(**base).evaluate_with_weights(arch)

    def child_of(move: Move):
        parent = ParentWeights(arch.hash, arch.to_json(), state, (move.to_json(),), "", result.valid_accuracy)
        return move.apply(arch, tk.moves), parent

    return tk, arch, base, child_of


@pytest.mark.slow
def test_the_evaluator_repairs_a_damaged_start_before_its_epoch_zero(trained_simple_cnn):
    """Removing simple-cnn's second conv leaves a start near chance (stale batch norm, a head reading moved
    features); the repair brings it most of the way back before a single gradient step, and its time counts."""
    tk, _arch, base, child_of = trained_simple_cnn
    child, parent = child_of(Move("remove", {"position": 3}))
    repaired, _ = evaluate_with_parent(TorchEvaluator(**base), child, parent, tk.moves)
    raw, _ = evaluate_with_parent(TorchEvaluator(**base, inherit_repair=False), child, parent, tk.moves)
    assert repaired.extra["function_preserving"] == "approximate"
    done = repaired.extra["inherit_repair"]
    start = repaired.extra["history"][0]
    assert done["valid_accuracy_before"] == raw.extra["history"][0]["valid_accuracy"]
    assert start["valid_accuracy"] > done["valid_accuracy_before"] + 0.2
    assert done["batchnorms"] == 2 and done["head_refit"] is True and done["samples"] > 0
    assert start["train_time_s"] == done["train_time_s"] > 0
    assert repaired.train_time_s >= done["train_time_s"]
    assert "inherit_repair" not in raw.extra
    # a start within inherit_max_drop of its parent is not damaged: nothing to repair
    lenient, _ = evaluate_with_parent(TorchEvaluator(**base, inherit_max_drop=1.0), child, parent, tk.moves)
    assert "inherit_repair" not in lenient.extra and lenient.extra["recovery"] is False
    assert lenient.extra["history"][0]["valid_accuracy"] == done["valid_accuracy_before"]


@pytest.mark.slow
def test_the_repair_reconstructs_the_conv_after_a_removed_relu_from_the_parent(trained_simple_cnn):
    """Removing simple-cnn's first ReLU feeds the second conv negative values it never saw: the repair refits
    that conv so that it reproduces the parent's output there, before the batch norms and the head; without
    the parent's weights (or with inherit_reconstruct = false) only the last two steps run."""
    tk, arch, base, child_of = trained_simple_cnn
    assert arch.nodes[2].type == "relu"
    child, parent = child_of(Move("remove", {"position": 2}))
    rebuilt, _ = evaluate_with_parent(TorchEvaluator(**base), child, parent, tk.moves)
    plain, _ = evaluate_with_parent(TorchEvaluator(**base, inherit_reconstruct=False), child, parent, tk.moves)
    done = rebuilt.extra["inherit_repair"]["reconstructed"]
    assert [r["node"] for r in done] == ["conv2d_1"]
    assert done[0]["error_after"] < done[0]["error_before"] / 2
    assert plain.extra["inherit_repair"]["reconstructed"] == []
    # on this parent, the corrected conv is a better start than batch norms and head alone
    assert rebuilt.extra["history"][0]["valid_accuracy"] > plain.extra["history"][0]["valid_accuracy"]
