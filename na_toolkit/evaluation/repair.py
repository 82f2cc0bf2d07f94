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

Before both, when the parent's trained network is at hand, a third step corrects the layers themselves:

0. **Layer reconstruction from the parent**: front to back, the first convolution whose output has drifted
   from the parent's output at the same node (relative RMS error above `tol`) is refit by ridge least squares
   so that, reading what now reaches it in the child, it reproduces what the parent computed there; the
   next drifted convolution is then judged on the corrected network, and so on. It is how channel pruning
   restores a layer after its input lost channels (He, Zhang & Sun 2017, "Channel Pruning for Accelerating
   Very Deep Neural Networks", arXiv:1707.06168; ThiNet, Luo et al. 2017, arXiv:1707.06342): here the input
   changed by a move (a removed layer, a cropped kernel, a clipped insertion). On the example's damaged
   children it lifts the repaired start by a median half point (up to 7 points; docs/moves.md) and turns
   some damaged starts into short fine-tunes (a grouped or depthwise conv is fit per group); a layer it
   cannot fit (another output width or size) is left as it was.

All read at most `samples` training images (a seeded subset); none touches the test or validation split.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..ir.architecture import Architecture

#: images the layer reconstruction reads (of the repair's subset): 256 images of 8x8 outputs are 16,384 rows for
#: a 3x3 conv's 145 unknowns; of 32x32 outputs, its `max_rows` for up to 2,305 (256 channels in). Measured on
#: the example's damaged children: as good a start as all 1,024 of the repair's images, at 3/4 of the time
RECONSTRUCT_IMAGES = 256
#: images that tell which convolution drifted (an error estimate, not a fit)
DRIFT_IMAGES = 64


@dataclass(frozen=True)
class Repair:
    """What `repair` did: convolutions reconstructed from the parent, batch norms recalibrated, whether the
    output layer was refit (and why not), images read."""

    batchnorms: int
    head_refit: bool
    samples: int
    note: str = ""
    #: the convolutions refit from the parent (layer reconstruction), in order
    reconstructed: tuple[Reconstructed, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "batchnorms": self.batchnorms,
            "head_refit": self.head_refit,
            "samples": self.samples,
            "note": self.note,
            "reconstructed": [r.to_json() for r in self.reconstructed],
        }


@dataclass(frozen=True)
class Reconstructed:
    """One convolution refit to reproduce its parent's output: its node id and its output's relative RMS
    error against the parent's at the sampled positions, before and after."""

    node: str
    error_before: float
    error_after: float

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "error_before": self.error_before, "error_after": self.error_after}


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


def repair(model, x, y, *, batch_size: int, samples: int, seed: int, parent: ParentNetwork | None = None) -> Repair:
    """Reconstruct `model`'s drifted convolutions from `parent` (None: skipped), recalibrate its batch norms and
    refit its output layer, on a seeded subset of at most `samples` of (`x`, `y`) (tensors on the model's
    device; `y` labels). The model is left in eval mode."""
    import torch

    n = len(x)
    if samples < n:
        keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:samples].to(x.device)
        x, y = x[keep], y[keep]
    rebuilt = []
    if parent is not None:  # a least-squares fit needs positions, not images: the first of the subset suffice
        reference = parent.module(seed=seed, device=x.device)
        rebuilt = reconstruct_from_parent(
            model, reference, x[:RECONSTRUCT_IMAGES], batch_size=batch_size, seed=seed, nodes=parent.shared
        )
    norms = recalibrate_batchnorm(model, x, batch_size)
    why_not = refit_output_layer(model, x, y.cpu(), batch_size)
    return Repair(norms, why_not == "", len(x), why_not, tuple(rebuilt))


@dataclass(frozen=True)
class ParentNetwork:
    """What the layer reconstruction reads of a child's parent: its architecture, trained state dict, and the
    ids of the nodes the child shares with it (carried through every move in between: the same id is the same
    node; an id freed by a removal and reused by an insertion is not)."""

    arch: Architecture
    state: dict[str, Any]
    shared: frozenset[str]

    def module(self, *, seed: int, device):
        """The parent's torch module with its trained weights, on `device`, in eval mode."""
        model = self.arch.to_torch(seed=seed)
        model.load_state_dict(self.state)
        return model.to(device).eval()


def reconstruct_from_parent(
    child,
    parent,
    x,
    *,
    batch_size: int,
    tol: float = 0.1,
    max_rows: int = 20_000,
    ridge: float = 1e-3,
    seed: int = 0,
    nodes: Collection[str] | None = None,
) -> list[Reconstructed]:
    """Refit, front to back, each convolution of `child` whose output drifted from `parent`'s at the same
    node (both `ArchitectureModule`s, the same layer key; a relative RMS error above `tol`), by ridge least
    squares of the parent's output on the child's input patches, in place; each refit is judged on the
    network the previous ones corrected (the drift is estimated on the first `DRIFT_IMAGES` of `x`). The fit
    reads at most about `max_rows` output positions (a seeded sample of each image's positions) and
    accumulates the normal equations batch by batch (memory: the kernel's size squared), per group of a
    grouped or depthwise conv. Convolutions with non-zero padding modes, or another output width or size than
    the parent's node, are left alone, as is a refit that fits worse than the weights it would replace; with
    `nodes`, only those node ids are compared (`ParentNetwork.shared`). Both networks run in eval mode;
    returns what was refit.

    Why `tol` 0.1: below it the drift is mostly what earlier refits could not remove, which a linear refit
    does not remove either (on resnet-cifar children, refits from 0.05 to 0.1 left their error where it was
    and doubled the time)."""
    import torch

    child.eval()
    parent.eval()
    names = getattr(child, "node_ids", {})
    keys = [
        key
        for key in child.layers.keys()
        if (nodes is None or names.get(key, key) in nodes) and _comparable(child.layers[key], parent, key)
    ]
    sampler = _Positions(max(1, math.ceil(max_rows / max(len(x), 1))), seed)
    done: list[Reconstructed] = []
    while keys:
        errors = _drift(child, parent, keys, x[:DRIFT_IMAGES], batch_size, sampler)
        bad = next((k for k in keys if errors.get(k, 0.0) > tol), None)
        if bad is None:
            break
        keys = keys[keys.index(bad) + 1 :]  # the next drifted conv is judged after this one's refit
        conv = child.layers[bad]
        gram, cross, target = _normal_equations(child, parent, bad, x, batch_size, sampler)
        old = _conv_matrix(conv).to(gram)
        d = gram.shape[-1]
        # the ridge per group, relative to its patches' mean squared norm per column
        scale_d = torch.diagonal(gram, dim1=-2, dim2=-1).sum(-1) / d
        penalty = ridge * torch.where(scale_d > 0, scale_d, torch.ones_like(scale_d))
        eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
        try:
            new = torch.linalg.solve(gram + penalty[:, None, None] * eye, cross)
        except RuntimeError:  # singular despite the ridge: keep the layer
            continue
        before, after = _sse(old, gram, cross, target), _sse(new, gram, cross, target)
        if not bool(torch.isfinite(new).all()) or after >= before:
            continue
        with torch.no_grad():  # (groups, patch [+ 1], out per group) back to the conv's layout
            if conv.bias is not None:
                conv.bias.copy_(new[:, -1, :].reshape(-1).to(conv.bias.dtype))
                new = new[:, :-1, :]
            conv.weight.copy_(new.permute(0, 2, 1).reshape(conv.weight.shape).to(conv.weight.dtype))
        scale = max(target, 1e-30)
        done.append(
            Reconstructed(names.get(bad, bad), math.sqrt(max(before, 0.0) / scale), math.sqrt(max(after, 0.0) / scale))
        )
    return done


def _comparable(conv, parent, key: str) -> bool:
    from torch import nn

    other = parent.layers[key] if key in parent.layers else None
    return (
        isinstance(conv, nn.Conv2d)
        and isinstance(other, nn.Conv2d)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.out_channels == other.out_channels
    )


class _Positions:
    """The output positions a layer's fit reads: per (layer, positions per image), a seeded sample of at most
    `per_image` of them, the same for the child and the parent."""

    def __init__(self, per_image: int, seed: int):
        self.per_image, self.seed, self._cache = per_image, seed, {}

    def __call__(self, key: str, positions: int, device):
        import torch

        got = self._cache.get((key, positions))
        if got is None:
            g = torch.Generator().manual_seed(self.seed + len(self._cache))
            got = torch.randperm(positions, generator=g)[: self.per_image].sort().values
            self._cache[(key, positions)] = got
        return got.to(device)


class _Seen(Exception):
    """Raised by the hook of the last layer a pass needs: the rest of the forward pass is not run."""


def _lockstep(
    child, parent, keys: list[str], x, batch_size: int, sampler: _Positions, on_batch, stop: bool = False
) -> None:
    """Run both networks batch by batch with hooks on `keys`; `on_batch(child_seen, parent_seen)` gets, per
    key and network, (input, output at the sampled positions, those positions, the output's positions per
    channel). With `stop`, each forward pass ends at the last of `keys` it reaches."""
    import torch

    seen_c: dict[str, Any] = {}
    seen_p: dict[str, Any] = {}

    def hook(store: dict[str, Any], key: str):
        def grab(module, inputs, output) -> None:
            flat = output.flatten(2)
            where = sampler(key, flat.shape[2], flat.device)
            store[key] = (inputs[0], flat[:, :, where], where, flat.shape[2])
            if stop and len(store) == len(keys):
                raise _Seen

        return grab

    def run(model, chunk) -> None:
        try:
            model(chunk)
        except _Seen:
            pass

    handles = [child.layers[k].register_forward_hook(hook(seen_c, k)) for k in keys]
    handles += [parent.layers[k].register_forward_hook(hook(seen_p, k)) for k in keys]
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                seen_c.clear()
                seen_p.clear()
                run(child, x[i : i + batch_size])
                run(parent, x[i : i + batch_size])
                on_batch(seen_c, seen_p)
    finally:
        for h in handles:
            h.remove()


def _drift(child, parent, keys: list[str], x, batch_size: int, sampler: _Positions) -> dict[str, float]:
    """Per key, the child's output's relative RMS error against the parent's; a key whose outputs differ in
    size (another stride, say) is left out."""
    sums = {k: [0.0, 0.0] for k in keys}

    def on_batch(seen_c, seen_p) -> None:
        for k in keys:
            if k not in seen_c or k not in seen_p:
                continue
            c, p = seen_c[k][1], seen_p[k][1]
            # the sampled shapes match when both grids are sampled down to the same count: compare the grids
            if c.shape != p.shape or seen_c[k][3] != seen_p[k][3]:
                sums[k][0] = math.nan  # another output size: not comparable
                continue
            sums[k][0] += float(((c - p).double() ** 2).sum())
            sums[k][1] += float((p.double() ** 2).sum())

    _lockstep(child, parent, keys, x, batch_size, sampler, on_batch, stop=True)
    return {k: math.sqrt(num / den) for k, (num, den) in sums.items() if den > 0 and math.isfinite(num)}


def _normal_equations(child, parent, key: str, x, batch_size: int, sampler: _Positions):
    """Per group of the child's conv at `key`: AᵀA (groups, D, D) and AᵀB (groups, D, out per group) of its
    input patches A (D: a group's input channels x kernel taps, + 1 for a ones column with a bias) and the
    parent's outputs B there, and Σ B²; float64. A dense conv is one group, a depthwise conv one per channel."""
    import torch
    from torch.nn import functional as F

    conv = child.layers[key]
    groups = conv.groups
    acc: dict[str, Any] = {}

    def on_batch(seen_c, seen_p) -> None:
        inputs, _out, where, _positions = seen_c[key]
        target = seen_p[key][1]
        patches = F.unfold(inputs, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)
        n, m = len(patches), len(where)
        # unfold orders a patch by input channel, then tap: a group's channels are a contiguous block
        a = patches[:, :, where].reshape(n, groups, -1, m).permute(1, 0, 3, 2).reshape(groups, n * m, -1).double()
        if conv.bias is not None:
            a = torch.cat([a, torch.ones(groups, n * m, 1, dtype=a.dtype, device=a.device)], dim=2)
        b = target.reshape(n, groups, -1, m).permute(1, 0, 3, 2).reshape(groups, n * m, -1).double()
        at = a.transpose(1, 2)
        for name, value in (("gram", at @ a), ("cross", at @ b), ("target", (b * b).sum())):
            acc[name] = acc[name] + value if name in acc else value

    _lockstep(child, parent, [key], x, batch_size, sampler, on_batch, stop=True)
    return acc["gram"], acc["cross"], float(acc["target"])


def _sse(w, gram, cross, target: float) -> float:
    """Σ (B - A w)² from the normal equations: Σ B² - 2 tr(wᵀ AᵀB) + tr(wᵀ AᵀA w)."""
    return float(target - 2 * (w * cross).sum() + (w * (gram @ w)).sum())


def _conv_matrix(conv):
    """The convolution's weights as the (groups, patch size [+ 1 for the bias], out channels per group) matrices
    the fit solves for."""
    import torch

    groups = conv.groups
    per_group = conv.out_channels // groups
    w = conv.weight.detach().reshape(groups, per_group, -1).permute(0, 2, 1).double()
    if conv.bias is not None:
        w = torch.cat([w, conv.bias.detach().double().reshape(groups, 1, per_group)], dim=1)
    return w
