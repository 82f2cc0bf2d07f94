"""Repairing an approximately inherited start (na_toolkit.evaluation.repair): batch-norm recalibration and the
output layer's linear probe, on real torch modules and, through the torch evaluator, a real damaged child of
simple-cnn trained on digits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import default_toolkit
from na_toolkit.evaluation.inherit import ParentWeights, evaluate_with_parent
from na_toolkit.evaluation.repair import recalibrate_batchnorm, refit_output_layer, repair
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


@pytest.mark.slow
def test_the_evaluator_repairs_a_damaged_start_before_its_epoch_zero():
    """Removing simple-cnn's second conv leaves a start near chance (stale batch norm, a head reading moved
    features); the repair brings it most of the way back before a single gradient step, and its time counts."""
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    base = {"datasets": tk.datasets, "epochs": 2, "inherit_epochs": 1, "threads": 1, "inherit_recovery_epochs": 1}
    parent_result, state = TorchEvaluator(**base).evaluate_with_weights(arch)
    remove = Move("remove", {"position": 3})
    child = remove.apply(arch, tk.moves)
    parent = ParentWeights(arch.hash, arch.to_json(), state, (remove.to_json(),), "", parent_result.valid_accuracy)
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
