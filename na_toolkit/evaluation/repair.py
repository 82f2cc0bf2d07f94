"""Repair an approximately inherited start before fine-tuning it: cheap, data-driven, no gradient steps.

A move that cannot keep its parent's function (a removed conv or ReLU, a cropped kernel, a narrowed layer, a
conv inserted where its ReLU clips a negative input) leaves a child whose inherited weights are mostly right
but whose *statistics* are stale: its batch norms normalise with the parent's running means and variances,
which no longer describe what reaches them, and its classifier reads features that moved. Measured on the
example's damaged children (docs/moves.md, "Weight inheritance"), that is most of the damage: such a start
scores near chance (median 10.1% validation accuracy, parents 99-100%), and two cheap steps bring the median
back to 87.7%:

1. **Batch-norm recalibration**: every batch norm's running statistics are re-estimated as the plain
   average over forward passes in training mode (no gradient), as slimmable networks re-estimate them for
   each width after training (Yu & Huang 2019, "Universally Slimmable Networks", arXiv:1903.05134).
2. **A linear probe of the output layer**: when the network's output is a linear layer's, that layer is refit
   by ridge least squares of the one-hot labels on its input features (closed form, float64), unless the
   inherited layer classifies more of the same training images: fine-tuning after a linear probe keeps more
   of the inherited features than fine-tuning a stale head (LP-FT, Kumar et al. 2022, arXiv:2202.10054).

Both read at most `samples` training images (a seeded subset); neither touches the test or validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Repair:
    """What `repair` did: batch norms recalibrated, whether the output layer was refit (and why not), images
    read."""

    batchnorms: int
    head_refit: bool
    samples: int
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "batchnorms": self.batchnorms,
            "head_refit": self.head_refit,
            "samples": self.samples,
            "note": self.note,
        }


def recalibrate_batchnorm(model, x, batch_size: int) -> int:
    """Re-estimate every batch norm's running statistics from `x` (forward passes in training mode, no
    gradient, the cumulative average: momentum None while it runs); returns how many batch norms there were.
    The model is left in eval mode; each layer's momentum is restored."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(x) < 2:  # nothing to recalibrate, or no batch to estimate a variance from
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                chunk = x[i : i + batch_size]
                if len(chunk) > 1:  # a batch of one has no variance to estimate
                    model(chunk)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return len(norms)


def refit_output_layer(model, x, y, batch_size: int, ridge: float = 1e-3) -> str:
    """Refit the output layer by ridge least squares of one-hot `y` on its input features, in place, when the
    network's output is an `nn.Linear`'s output. Returns "" when refit, else why not (the layer is left as it
    was). `ridge` is relative to the features' mean squared norm."""
    import torch

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        return "the network has no linear layer"
    head = linears[-1]
    seen: dict[str, Any] = {"features": [], "outputs": []}

    def hook(module, inputs, output) -> None:
        seen["features"].append(inputs[0].detach())
        seen["outputs"].append(output)

    model.eval()
    handle = head.register_forward_hook(hook)
    try:
        with torch.no_grad():
            outputs = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        handle.remove()
    if len(seen["outputs"]) != len(outputs) or any(a is not b for a, b in zip(seen["outputs"], outputs, strict=True)):
        return "the network's output is not its last linear layer's"
    labels = torch.as_tensor(y, dtype=torch.long)
    classes = head.out_features
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= classes:
        return f"labels outside the output layer's {classes} units"
    features = torch.cat(seen["features"]).flatten(1).to("cpu", torch.float64)
    if head.bias is not None:  # the intercept column
        features = torch.cat([features, torch.ones(len(features), 1, dtype=torch.float64)], dim=1)
    targets = torch.nn.functional.one_hot(labels, classes).to(torch.float64)
    n, d = features.shape
    # the ridge, relative to the features' mean squared norm per column: trace(F'F) / d
    penalty = ridge * (float((features * features).sum()) / d or 1.0)
    try:
        if d <= n:  # the primal system, d x d
            gram = features.T @ features + penalty * torch.eye(d, dtype=torch.float64)
            solution = torch.linalg.solve(gram, features.T @ targets)
        else:  # more features than images: the dual system, n x n, the same solution (push-through identity)
            kernel = features @ features.T + penalty * torch.eye(n, dtype=torch.float64)
            solution = features.T @ torch.linalg.solve(kernel, targets)
    except RuntimeError as exc:  # a singular system despite the ridge: keep the inherited layer
        return f"least squares failed: {exc}"
    if not bool(torch.isfinite(solution).all()):
        return "least squares gave non-finite weights"
    inherited_hits = int((torch.cat(outputs).argmax(dim=1).cpu() == labels).sum())
    refit_hits = int(((features @ solution).argmax(dim=1) == labels).sum())
    if refit_hits < inherited_hits:  # the inherited layer still reads its features better: keep it
        return f"the inherited layer classifies more training images ({inherited_hits} vs {refit_hits})"
    with torch.no_grad():
        if head.bias is not None:
            head.bias.copy_(solution[-1].to(head.bias.dtype))
            solution = solution[:-1]
        head.weight.copy_(solution.T.to(head.weight.dtype))
    return ""


def repair(model, x, y, *, batch_size: int, samples: int, seed: int) -> Repair:
    """Recalibrate `model`'s batch norms and refit its output layer on a seeded subset of at most `samples`
    of (`x`, `y`) (tensors on the model's device; `y` labels). The model is left in eval mode."""
    import torch

    n = len(x)
    if samples < n:
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:samples].to(x.device)
        x, y = x[keep], y[keep]
    norms = recalibrate_batchnorm(model, x, batch_size)
    why_not = refit_output_layer(model, x, y.cpu(), batch_size)
    return Repair(norms, why_not == "", len(x), why_not)
