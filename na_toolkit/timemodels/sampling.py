"""Sampling networks to profile: the seeds and random move sequences applied to them.

Each move is drawn uniformly from the moves given and its parameters by the move's own `sample`, so its
masks hold. The same generator state gives the same networks (a resumed profile regenerates its plan).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NAToolkitError
from ..ir.architecture import Architecture
from .kernels import Kernel, kernels_of, neighbour_kernel_architectures

if TYPE_CHECKING:
    from ..ir.layers import LayerTypeRegistry
    from ..moves import MoveType
    from ..toolkit import Toolkit
    from .profile import DeviceProfile


@dataclass(frozen=True)
class Variant:
    """A network made from a seed by a sequence of moves."""

    seed: str
    moves: tuple[dict[str, Any], ...]
    arch: Architecture


def load_seed(seed: str, toolkit: Toolkit) -> Architecture:
    """A seed registered in `toolkit` by name (even where a file of that name exists: a warning says to write
    './NAME'), or an architecture JSON file (read with its layer types; `na_toolkit.files.name_or_path`)."""
    from ..files import name_or_path

    p = name_or_path(seed, toolkit.seeds.names(), "seed network")
    if p is None:
        return toolkit.seed(seed)
    return Architecture.load(p, layer_types=toolkit.layer_types)


def all_move_types(toolkit: Toolkit) -> list[MoveType]:
    """Every move registered in `toolkit`, in registration order (the order sampling draws from)."""
    return [toolkit.moves.get(n) for n in toolkit.moves.names()]


def random_move(
    arch: Architecture, rng: np.random.Generator, move_types: Sequence[MoveType], tries: int = 8
) -> tuple[str, dict[str, Any], Architecture] | None:
    """One random valid move: an operation drawn uniformly, its parameters by the operation's own
    `sample` (which respects its masks). None when no operation applies."""
    for _ in range(tries):
        op = move_types[int(rng.integers(len(move_types)))]
        try:
            params = op.sample(arch, rng)
            if params is None:
                continue
            return op.name, params, op.apply(arch, **params)
        except (NAToolkitError, ValueError):  # a plugin move that fails is skipped, not fatal
            continue
    return None


def random_variants(
    seeds: dict[str, Architecture],
    count: int,
    rng: np.random.Generator,
    max_moves: int = 6,
    *,
    move_types: Sequence[MoveType],
    exclude: Iterable[str] = (),
    include_seeds: bool = True,
    max_flops: float | None = None,
) -> list[Variant]:
    """`count` distinct networks: the seeds themselves (if include_seeds) and random move sequences of
    1..max_moves of the `move_types` (e.g. `all_move_types(toolkit)`) from a seed drawn in turn. Hashes in
    `exclude` are skipped."""
    seen = set(exclude)
    out: list[Variant] = []
    names = list(seeds)
    if include_seeds:
        for name in names:
            a = seeds[name]
            if a.hash not in seen and len(out) < count:
                seen.add(a.hash)
                out.append(Variant(name, (), a))
    attempts = 0
    while len(out) < count and attempts < 50 * count + 100:
        attempts += 1
        name = names[attempts % len(names)]
        arch = seeds[name]
        moves: list[dict[str, Any]] = []
        for _ in range(int(rng.integers(1, max_moves + 1)) if move_types else 0):
            step = random_move(arch, rng, move_types)
            if step is None:
                break
            op_name, params, arch = step
            moves.append({"operation": op_name, "params": plain(params)})
        if arch.hash in seen or (max_flops is not None and arch.flops > max_flops):
            continue
        seen.add(arch.hash)
        out.append(Variant(name, tuple(moves), arch))
    return out


def plain(value: Any) -> Any:
    """`value` with numpy scalars turned into Python numbers and tuples into lists (JSON-ready)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def adaptive_samples(
    prof: DeviceProfile,
    kernel_err: Sequence[tuple[str, float]],
    network_err: Sequence[tuple[str, float]],
    n_kernels: int,
    n_networks: int,
    rng: np.random.Generator,
    toolkit: Toolkit,
    max_flops: float | None,
) -> tuple[list[tuple[Kernel, Architecture]], list[Variant]]:
    """An adaptive round's new samples (profiler.py, step 3): up to `n_kernels` kernel configurations near the
    worst-predicted kernels (`kernel_err`: key, cross-validated error) and networks one random move away from
    the `n_networks` worst-predicted networks, none of them measured yet and none over `max_flops`."""
    # kernels: neighbours of the worst-predicted configurations
    known = prof.kernel_keys()
    worst = sorted(kernel_err, key=lambda kv: -kv[1])[: max(4, n_kernels // 4)]
    by_key = {k.key: k for k in prof.kernels}
    new_kernels: list[tuple[Kernel, Architecture]] = []
    lt = toolkit.layer_types
    for key, _err in worst:
        rec = by_key[key]
        karch = Architecture.from_json(rec.arch, layer_types=lt)
        kernel = kernels_of(karch)[0]
        for arch in neighbour_kernel_architectures(kernel, rng, 4, layer_types=lt):
            k2 = kernels_of(arch)[0]
            if k2.key not in known and len(new_kernels) < n_kernels:
                known.add(k2.key)
                new_kernels.append((k2, arch))
    # networks: one random move away from the worst-predicted networks
    move_types = all_move_types(toolkit)
    hashes = prof.network_hashes()
    by_hash = {n.hash: n for n in prof.networks}
    new_nets: list[Variant] = []
    for h, _err in sorted(network_err, key=lambda kv: -kv[1])[:n_networks]:
        net = by_hash[h]
        arch = Architecture.from_json(net.arch, layer_types=lt)
        step = random_move(arch, rng, move_types) if move_types else None
        if step is None:
            continue
        op_name, params, child = step
        if child.hash in hashes or (max_flops is not None and child.flops > max_flops):
            continue
        hashes.add(child.hash)
        new_nets.append(Variant(net.seed, (*net.moves, {"operation": op_name, "params": plain(params)}), child))
    return new_kernels, new_nets


def cross_validated_errors(
    profile: DeviceProfile, layer_types: LayerTypeRegistry, folds: int = 5, seed: int = 0
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Out-of-fold |log(predicted / measured)| of every kernel (key, error) and every network (hash, error):
    where the model errs, for the adaptive sampler."""
    from .learned import KernelLatencyModel, profile_data

    data = profile_data(profile, layer_types)
    rng = np.random.default_rng(seed)
    kerr = np.zeros(len(data.kernels))
    kfold = rng.integers(0, folds, len(data.kernels))
    for f in range(folds):
        test = np.flatnonzero(kfold == f)
        train = np.flatnonzero(kfold != f)
        if len(test) == 0 or len(train) < 3:
            continue
        m = KernelLatencyModel(seed=seed).fit_kernels([data.kernels[i] for i in train], data.kernel_y_ms[train])
        kerr[test] = np.abs(np.log(m.predict_kernels([data.kernels[i] for i in test]) / data.kernel_y_ms[test]))
    nerr = np.zeros(len(data.network_hashes))
    if len(nerr):
        full = KernelLatencyModel(seed=seed).fit_kernels(data.kernels, data.kernel_y_ms)
        nfold = rng.integers(0, folds, len(nerr))
        for f in range(folds):
            test = np.flatnonzero(nfold == f)
            train = np.flatnonzero(nfold != f)
            if len(test) == 0:
                continue
            full.fit_networks([data.network_kernels[i] for i in train], data.network_y_ms[train])
            pred = full.predict_networks([data.network_kernels[i] for i in test])
            nerr[test] = np.abs(np.log(pred / data.network_y_ms[test]))
    return list(zip(data.kernel_keys, kerr.tolist())), list(zip(data.network_hashes, nerr.tolist()))
