"""The held-out set of `bench latency` and the learned model's figures on it.

Which seed networks the held-out networks are random variants of (`--heldout-seed`, else the profile's own
seeds), refused up front where one is bigger than the profile measures, and the figures that say how far a
profile built from some seeds carries to networks of others: per seed, and split by the learned model's own
outside-the-profile warning (`details["outside_profile_domain"]`), so that one can see how often it fires and
whether the flagged networks are the badly predicted ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..ir.architecture import Architecture
    from ..timemodels.profile import DeviceProfile
    from ..toolkit import Toolkit

#: fewer networks than this in a subset: its counts are reported, its figures are not (a rank correlation of
#: two networks is ±1 whatever the model)
MIN_FIGURE_NETWORKS = 3
#: what `accuracy` reports
FIGURES = ("within_10pct", "within_20pct", "mape", "spearman", "median_ratio")


def accuracy(pred: Any, true: Any) -> dict[str, float]:
    """Share within ±10% / ±20%, mean absolute percentage error, Spearman rank correlation."""
    import numpy as np
    from scipy.stats import spearmanr

    p, t = np.asarray(pred, float), np.asarray(true, float)
    rel = np.abs(p - t) / t
    return {
        "within_10pct": float(np.mean(rel <= 0.10)),
        "within_20pct": float(np.mean(rel <= 0.20)),
        "mape": float(np.mean(rel)),
        "spearman": float(spearmanr(p, t).statistic),
        "median_ratio": float(np.median(p / t)),
    }


def spread(values: Any) -> dict[str, float]:
    """Median, p10 and p90 of `values` (ratios of latencies, as the figures report them)."""
    import numpy as np

    return {
        "median": float(np.median(values)),
        "p10": float(np.percentile(values, 10)),
        "p90": float(np.percentile(values, 90)),
    }


def given_seeds(refs: Sequence[str] | None, toolkit: Toolkit) -> dict[str, Architecture] | None:
    """The seed networks `--heldout-seed` names, as `na-toolkit profile --seed-net` reads them (a registered
    name, an IR .json or an .onnx file; an unknown name is an error with the close matches), by the reference
    a profile stores; None when none is given (the profile's own seeds are the default)."""
    from ..timemodels.profile_resume import resolve_seeds

    return resolve_seeds(refs, toolkit, what="--heldout-seed") if refs else None


def profile_seeds(profile: DeviceProfile, toolkit: Toolkit) -> dict[str, Architecture]:
    """The seed networks `profile` was built from: those its plan stores, else the references it names
    resolved here, else (a profile that names none) the profile command's defaults; as a resumed profile
    reads them (`profile_resume.stored_seeds`, which checks them against what the profile measured)."""
    from ..timemodels.profile_plan import ProfileOptions
    from ..timemodels.profile_resume import stored_seeds

    where = Path(str(profile.path or profile.name))
    return stored_seeds(ProfileOptions(out=where), profile, toolkit)[0]


def check_seed_flops(seeds: dict[str, Architecture], max_flops: float | None, what: str) -> None:
    """Refuse a seed bigger than the profile measures any network (`plan.max_flops`): its random variants
    over the limit are dropped, so its held-out networks would be few or none, and the profile could not
    have been built for networks of that size anyway. ConfigError naming the seed, both sizes and what to do."""
    from ..errors import ConfigError

    if max_flops is None:
        return
    for label, arch in seeds.items():
        if arch.flops > max_flops:
            raise ConfigError(
                f"{what} {label!r} is {arch.flops / 1e6:.0f} MFLOPs, over the profile's limit of "
                f"{max_flops / 1e6:.0f} MFLOPs (plan.max_flops: it measures no bigger network): held-out variants "
                "over the limit are dropped, so it would give few networks or none, and none of its own size. Give "
                "a smaller network of that family (a smaller input or fewer channels) as --heldout-seed"
            )


def heldout_doc(
    seeds: dict[str, Architecture], own: dict[str, Architecture], variant_seeds: Sequence[str]
) -> dict[str, Any]:
    """`heldout.seeds` (each seed's held-out networks and size), `heldout.profile_seeds` and
    `heldout.out_of_family`: the held-out seeds that are no seed network of the profile (by network, so a file
    of a profile's seed is in the family)."""
    known = {a.hash for a in own.values()}
    return {
        "seeds": {
            label: {"networks": sum(s == label for s in variant_seeds), "mflops": arch.flops / 1e6}
            for label, arch in seeds.items()
        },
        "profile_seeds": list(own),
        "out_of_family": [label for label, arch in seeds.items() if arch.hash not in known],
    }


def subset_figures(pred: Any, truth: Any, idx: Sequence[int]) -> dict[str, Any] | None:
    """The learned model's figures over the networks `idx` (their count, and `accuracy` with the median
    measured latency where there are at least MIN_FIGURE_NETWORKS, else null figures); None when empty."""
    import numpy as np

    if not idx:
        return None
    chosen = list(idx)
    if len(chosen) < MIN_FIGURE_NETWORKS:
        figures: dict[str, Any] = dict.fromkeys((*FIGURES, "latency_ms_median"))
    else:
        figures = accuracy(pred[chosen], truth[chosen])
        figures["latency_ms_median"] = float(np.median(truth[chosen]))
    return {"networks": len(chosen), **figures}


def learned_split(
    pred: Any, truth: Any, variant_seeds: Sequence[str], outside: Sequence[Sequence[str]], seeds: Sequence[str]
) -> dict[str, Any]:
    """`learned.by_seed` (every held-out seed, in order, with the share of its networks the model flagged) and
    `learned.outside_profile`: the share of networks whose estimate carried the outside-the-profile warning
    (`outside`: each network's reasons, empty when none), and the figures over the unflagged ("inside") and
    the flagged ("outside") networks, each None when there are none."""
    flagged = [bool(r) for r in outside]
    by_seed: dict[str, Any] = {}
    for seed in seeds:
        idx = [i for i, s in enumerate(variant_seeds) if s == seed]
        figures = subset_figures(pred, truth, idx)
        if figures is not None:
            figures["outside_profile_share"] = sum(flagged[i] for i in idx) / len(idx)
        by_seed[seed] = figures
    return {
        "by_seed": by_seed,
        "outside_profile": {
            "share": sum(flagged) / len(flagged),
            "inside": subset_figures(pred, truth, [i for i, f in enumerate(flagged) if not f]),
            "outside": subset_figures(pred, truth, [i for i, f in enumerate(flagged) if f]),
        },
    }


# ---- the machine's drift since the profile ----------------------------------------------------------------
def drift_reference(
    profile: DeviceProfile, toolkit: Toolkit, n: int, rng_seed: int
) -> list[tuple[Architecture, float]]:
    """`n` of the profile's networks (a stream of their own) and their latencies in the profile: measured
    again among the held-out networks, they tell how much slower or faster the machine runs now than when the
    profile was measured, which no model of the profile can know."""
    import numpy as np

    if n <= 0 or not profile.networks:
        return []
    pick = np.random.default_rng([rng_seed, 104723]).permutation(len(profile.networks))[:n]
    out = []
    for i in sorted(int(i) for i in pick):
        rec = profile.networks[i]
        out.append(
            (profile.record_arch(f"networks[{i}]", rec.arch, toolkit.layer_types), rec.latency_ms(profile.statistic))
        )
    return out


def drift_figures(profile_ms: Sequence[float], now_ms: Any, pred: Any, truth: Any) -> dict[str, Any]:
    """The profile's networks measured now over their profile latencies (`now_over_profile`: median, p10,
    p90), and the learned model's figures with its predictions scaled by that median (`learned_rescaled`):
    what the model would score had the machine run as fast as when it was profiled. The session's drift and
    the protocol's (the held-out truth is the lowest of several passes, a profile record one session's) are
    then out of the comparison; the model's own error is not."""
    import numpy as np

    if not len(profile_ms):
        return {"networks": 0}
    ratio = np.asarray(now_ms, float) / np.asarray(profile_ms, float)
    now_over_profile = spread(ratio)
    return {
        "networks": len(ratio),
        "now_over_profile": now_over_profile,
        "learned_rescaled": accuracy(np.asarray(pred, float) * now_over_profile["median"], truth),
    }


# ---- how far one measurement of a network carries to another ------------------------------------------
def pass_figures(
    per_pass: Sequence[Sequence[dict[str, Any]]], statistic: str, pred: Any, seeds: Sequence[str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The measurement's own ceiling beside the model's figure, on the same footing: each pass of a held-out
    network taken as the prediction of each other pass (`pass_agreement`: the figures averaged over the
    ordered pairs of passes, and `within_10pct` per seed), and the learned model's `pred` against each single
    pass (`vs_one_pass`, averaged over the passes). A model that scores like one pass predicts another is as
    good as measuring the network once; the truth the headline figure uses (the statistic over all passes)
    is steadier than one pass, so it can score higher. (None, None) with fewer than two passes."""
    import numpy as np

    key = "min_ms" if statistic == "min" else "median_ms"
    P = np.array([[p.get(key, np.nan) if p else np.nan for p in passes] for passes in per_pass], float)
    if P.ndim != 2 or P.shape[1] < 2:
        return None, None
    n_pass = P.shape[1]
    seed_of = np.asarray(seeds)

    def mean_of(docs: list[dict[str, float]]) -> dict[str, float]:
        return {k: float(np.mean([d[k] for d in docs])) for k in ("within_10pct", "within_20pct", "mape")}

    def agreement(rows: Any) -> dict[str, float]:
        docs = []
        for i in range(n_pass):
            for j in range(n_pass):
                ok = rows & np.isfinite(P[:, i]) & np.isfinite(P[:, j])
                if i != j and ok.sum() >= MIN_FIGURE_NETWORKS:
                    docs.append(accuracy(P[ok, i], P[ok, j]))
        return mean_of(docs) if docs else {}

    everyone = np.ones(len(P), dtype=bool)
    agree = {**agreement(everyone), "passes": n_pass}
    agree["by_seed"] = {str(s): agreement(seed_of == s).get("within_10pct") for s in sorted(set(seeds))}
    pred = np.asarray(pred, float)
    one = [
        accuracy(pred[ok], P[ok, r]) for r in range(n_pass) if (ok := np.isfinite(P[:, r])).sum() >= MIN_FIGURE_NETWORKS
    ]
    return agree, (mean_of(one) if one else None)


# ---- what a search gains by scaling the estimates by its own measurements -----------------------------
#: measured networks a search has when its factor is taken (`learned_rescaled_by_measure`)
RESCALE_AFTER = (5, 10, 20)
#: orders of the held-out networks the figures are averaged over
RESCALE_ORDERS = 20
#: the figures of a rescaled prediction
RESCALED_FIGURES = ("within_10pct", "within_20pct", "mape")


def rescaled_figures(
    pred: Any, truth: Any, archs: Sequence[Any], seeds: Sequence[str], rng_seed: int
) -> dict[str, Any]:
    """A search's `rescale_by_measure` played on the held-out set. For k in RESCALE_AFTER the first k networks
    of a random order are the ones measured so far; the predictions of the others are scaled by the median of
    measured over predicted of those k (`median`: `rescale_neighbours = 0`, the default; `scale`: the median
    factor) and by each network's own factor from its 3 most similar measured networks (`neighbours`;
    search/rescale.py), and scored against their truth. The figures are the mean over RESCALE_ORDERS orders.
    Under `by_seed` the same is played within each held-out seed's networks, as a search measures and
    proposes networks of one family, pooled over the seeds; there `budget_agreement` is the share of networks
    put on the same side of a latency budget at their seed's median latency by the prediction and by the
    measurement: what a search's budget decides (`unscaled`: the same networks' figures before any scaling).
    A k that leaves fewer than MIN_FIGURE_NETWORKS networks to score (of every seed, under `by_seed`) is left
    out."""
    import numpy as np

    from ..search.rescale import SUGGESTED_RESCALE_NEIGHBOURS, LatencyScale, Neighbours, Signature

    p, t = np.asarray(pred, float), np.asarray(truth, float)
    sigs = [Signature.of(a) for a in archs]
    groups = {s: np.flatnonzero(np.asarray(seeds) == s) for s in dict.fromkeys(seeds)}

    def play(members: Any, k: int, r: int, salt: int) -> tuple[Any, Any, Any, float]:
        order = members[np.random.default_rng([rng_seed, 7919, salt, r]).permutation(len(members))]
        seen, rest = order[:k], order[k:]
        ratios = t[seen] / p[seen]
        scale = LatencyScale.of(ratios).scale
        near = Neighbours(SUGGESTED_RESCALE_NEIGHBOURS, [sigs[i] for i in seen], ratios)
        local = np.array([near.factor(sigs[i]) for i in rest])
        return rest, p[rest] * scale, p[rest] * local, scale

    def scored(rest: Any, pr: Any, budgets: Any = None) -> dict[str, float]:
        doc = {f: v for f, v in accuracy(pr, t[rest]).items() if f in RESCALED_FIGURES}
        if budgets is not None:
            doc["budget_agreement"] = float(np.mean((pr <= budgets) == (t[rest] <= budgets)))
        return doc

    def mean(docs: list[dict[str, float]]) -> dict[str, float]:
        return {f: float(np.mean([d[f] for d in docs])) for f in docs[0]}

    out: dict[str, Any] = {}
    for k in RESCALE_AFTER:
        if len(p) - k < MIN_FIGURE_NETWORKS:
            continue
        med, loc, scales = [], [], []
        for r in range(RESCALE_ORDERS):
            rest, by_median, by_neighbours, scale = play(np.arange(len(p)), k, r, 0)
            med.append(scored(rest, by_median))
            loc.append(scored(rest, by_neighbours))
            scales.append(scale)
        out[str(k)] = {**mean(med), "scale": float(np.median(scales)), "neighbours": mean(loc)}
    by_seed: dict[str, Any] = {}
    for k in RESCALE_AFTER:
        if min(len(m) for m in groups.values()) - k < MIN_FIGURE_NETWORKS:
            continue
        med, loc, raw = [], [], []
        for r in range(RESCALE_ORDERS):
            played = [play(m, k, r, salt) for salt, m in enumerate(groups.values(), start=1)]
            rest = np.concatenate([x[0] for x in played])
            budgets = np.concatenate([np.full(len(x[0]), np.median(t[m])) for x, m in zip(played, groups.values())])
            med.append(scored(rest, np.concatenate([x[1] for x in played]), budgets))
            loc.append(scored(rest, np.concatenate([x[2] for x in played]), budgets))
            raw.append(scored(rest, p[rest], budgets))
        by_seed[str(k)] = {**mean(med), "neighbours": mean(loc), "unscaled": mean(raw)}
    return out | ({"by_seed": by_seed} if by_seed else {})
