"""Weight inheritance through function-preserving moves (docs/moves.md, "Weight inheritance"): real torch
builds, a real torch evaluator on digits, real searches in a real SQLite store."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT, default_toolkit
from killed_run import cut_run
from na_toolkit.errors import ConfigError
from na_toolkit.evaluation.inherit import ParentWeights, evaluate_with_parent, inherit_state
from na_toolkit.evaluation.torch_trainer import TorchEvaluator, recovery_epochs
from na_toolkit.ir.architecture import Architecture
from na_toolkit.moves import Move, MoveType, ParamSpec
from na_toolkit.moves.inherit import ChannelMap
from na_toolkit.search import run_search
from na_toolkit.search.executors import Task

#: seeds small enough to build and run every sampled child in a test (32x32 inputs or smaller)
SMALL_SEEDS = ("simple-cnn", "resnet-cifar", "mobilenetv2-cifar")
BUILTIN_MOVES = ("insert_conv", "insert_add", "scale", "remove")


def trained_like_state(arch: Architecture, seed: int) -> dict[str, torch.Tensor]:
    """A state dict that looks trained: random weights, and batch norms with statistics and affine
    parameters away from their initial 0 / 1 (an identity batch norm would hide mapping mistakes)."""
    model = arch.to_torch(seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.5)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
        for name, p in model.named_parameters():
            if p.ndim == 1:
                scaled = torch.rand(p.shape, generator=g) + 0.5
                p.copy_(scaled if name.endswith("weight") else torch.randn(p.shape, generator=g) * 0.3)
    return model.state_dict()


def outputs(arch: Architecture, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    model = arch.to_torch(seed=0)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        return model(x)


def every_assignment(op: MoveType, arch: Architecture, chosen: dict | None = None) -> list[dict]:
    """Every full parameter assignment the masks admit."""
    chosen = chosen or {}
    rest = [p for p in op.params() if p.name not in chosen]
    if not rest:
        return [dict(chosen)]
    p = rest[0]
    out: list[dict] = []
    for i in np.flatnonzero(op.admitted(arch, p.name, chosen)):
        out += every_assignment(op, arch, {**chosen, p.name: p.value_at(int(i))})
    return out


def check_moves_from(seed_name: str, every: bool, samples: int, batch: int = 3) -> dict[tuple[str, str], int]:
    """Apply moves to a seed (every admitted assignment with `every`, else `samples` draws per move), map a
    trained-like parent's weights, and check every exact child against the parent in float32. Returns
    (move, preservation) -> count."""
    tk = default_toolkit()
    arch = tk.seed(seed_name)
    state = trained_like_state(arch, 1)
    x = torch.randn(batch, *arch.input_shape, generator=torch.Generator().manual_seed(2))
    want = outputs(arch, state, x)
    rng = np.random.default_rng(0)
    counts: dict[tuple[str, str], int] = {}
    for name in tk.moves:
        op = tk.moves.get(name)
        if every:
            draws = every_assignment(op, arch)
        else:
            draws = [d for d in (op.sample(arch, rng) for _ in range(samples)) if d is not None]
        for params in draws:
            child = op.apply(arch, **params)
            got = inherit_state(arch, state, (Move(name, params).to_json(),), child, tk.moves)
            counts[name, got.preservation] = counts.get((name, got.preservation), 0) + 1
            if got.preservation == "none":
                assert got.state is None and got.reason
                continue
            out = outputs(child, got.state, x)
            assert out.shape == want.shape
            if got.preservation == "exact":
                err = float((out - want).abs().max())
                assert err <= 1e-5, f"{seed_name}: {name} {params} claims exact, max abs error {err}"
    return counts


def test_sampled_exact_moves_from_the_default_seed_keep_the_outputs():
    counts = check_moves_from("simple-cnn", every=False, samples=8)
    assert sum(n for (_, level), n in counts.items() if level == "exact") > 0


@pytest.mark.slow
def test_every_exact_move_from_the_default_seed_keeps_the_outputs():
    counts = check_moves_from("simple-cnn", every=True, samples=0)
    for name in BUILTIN_MOVES:  # each built-in move is exact somewhere on the default seed
        assert counts.get((name, "exact"), 0) > 0, (name, counts)


@pytest.mark.slow
@pytest.mark.parametrize("seed_name", [s for s in SMALL_SEEDS if s != "simple-cnn"])
def test_exact_moves_from_the_other_seeds_keep_the_outputs(seed_name):
    counts = check_moves_from(seed_name, every=False, samples=6)
    assert sum(n for (_, level), n in counts.items() if level == "exact") > 0


@pytest.mark.slow
def test_exact_moves_from_every_registered_seed_keep_the_outputs():
    """Every other registered seed (ImageNet-sized ones included), one draw per move, one input."""
    for seed_name in default_toolkit().seeds:
        if seed_name not in SMALL_SEEDS:
            check_moves_from(seed_name, every=False, samples=1, batch=1)


def test_chains_of_moves_and_what_cannot_be_inherited():
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    state = trained_like_state(arch, 3)
    x = torch.randn(4, *arch.input_shape, generator=torch.Generator().manual_seed(0))
    # Net2Deeper then Net2Wider: an identity conv after the first ReLU, then the new conv widened
    relu = next(i for i, n in enumerate(arch.nodes) if n.type == "relu")
    moves = [Move("insert_conv", {"position": relu, "filters": 16, "kernel": 3})]
    mid = moves[0].apply(arch, tk.moves)
    conv = next(i for i, n in enumerate(mid.nodes) if n.id not in arch and n.type == "conv2d")
    moves.append(Move("scale", {"position": conv, "attribute": "channels", "value": 48}))
    child = moves[1].apply(mid, tk.moves)
    got = inherit_state(arch, state, tuple(m.to_json() for m in moves), child, tk.moves)
    assert got.preservation == "exact"
    assert float((outputs(child, got.state, x) - outputs(arch, state, x)).abs().max()) <= 1e-5
    # the nodes the child shares with the parent: every parent node here, none of the inserted ones
    assert got.shared == {n.id for n in arch.nodes}
    removed = Move("remove", {"position": relu})
    gone = inherit_state(arch, state, (removed.to_json(),), removed.apply(arch, tk.moves), tk.moves)
    assert gone.shared == {n.id for n in arch.nodes} - {arch.nodes[relu].id}
    # moves that do not lead to the child, and a move type that does not opt in
    other = Move("scale", {"position": conv, "attribute": "kernel", "value": 5}).apply(mid, tk.moves)
    wrong = inherit_state(arch, state, tuple(m.to_json() for m in moves), other, tk.moves)
    assert wrong.state is None and wrong.preservation == "none" and "do not lead" in wrong.reason

    class Plain(MoveType):  # a plugin move written without inheritance: trains from scratch
        name = "plain"

        def params(self):
            return (ParamSpec.position("position"),)

    assert Plain().inherit_weights(arch, child, {"position": 0}, {}, np.random.default_rng(0)) is None


def test_widening_a_conv_that_feeds_both_sides_of_a_skip_keeps_the_function():
    """A skip from a conv around its own batch norm and ReLU (add(relu(bn(conv)), conv)): the add reads the
    widened conv directly and through the channel-wise layers, both in the same layout, so Net2Wider passes
    through it exactly; narrowing keeps the same channels on both sides (approximate)."""
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    ids = [n.id for n in arch.nodes]
    skip = Move("insert_add", {"source": ids.index("conv2d_0"), "target": ids.index("relu_0")})
    mid = skip.apply(arch, tk.moves)
    add = next(n for n in mid.nodes if n.type == "add")
    assert set(add.inputs) == {"conv2d_0", "relu_0"}
    state = trained_like_state(mid, 4)
    x = torch.randn(4, *mid.input_shape, generator=torch.Generator().manual_seed(0))
    conv = [n.id for n in mid.nodes].index("conv2d_0")
    for width, level in ((24, "exact"), (8, "approximate")):
        move = Move("scale", {"position": conv, "attribute": "channels", "value": width})
        child = move.apply(mid, tk.moves)
        got = inherit_state(mid, state, (move.to_json(),), child, tk.moves)
        assert got.preservation == level, width
        if level == "exact":
            assert float((outputs(child, got.state, x) - outputs(mid, state, x)).abs().max()) <= 1e-5


def test_widening_splits_sum_to_one_and_narrowing_keeps_the_strongest():
    m = ChannelMap.resize(4, 10, np.random.default_rng(0))
    assert m.exact and list(m.source[:4]) == [0, 1, 2, 3]
    totals = np.zeros(4)
    np.add.at(totals, m.source, m.split)
    assert np.allclose(totals, 1.0) and len(set(np.round(m.split, 6))) > 4  # copies weighed unequally
    narrow = ChannelMap.resize(4, 2, np.random.default_rng(0), importance=np.array([0.1, 3.0, 0.2, 2.0]))
    assert not narrow.exact and list(narrow.source) == [1, 3]


@pytest.fixture(scope="module")
def parent_and_child():
    """simple-cnn trained 1 epoch on digits, and a child one exact move away (Net2Wider on its first conv)."""
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    evaluator = TorchEvaluator(datasets=tk.datasets, epochs=1, inherit_epochs=1, threads=1)
    result, state = evaluator.evaluate_with_weights(arch)
    move = Move("scale", {"position": 0, "attribute": "channels", "value": 24})
    return tk, evaluator, arch, result, state, move, move.apply(arch, tk.moves)


@pytest.mark.slow
def test_the_evaluator_fine_tunes_an_exact_child_from_its_parents_accuracy(parent_and_child):
    tk, evaluator, arch, parent_result, state, move, child = parent_and_child
    parent = ParentWeights(arch.hash, arch.to_json(), state, (move.to_json(),), "", parent_result.valid_accuracy)
    result, weights = evaluate_with_parent(evaluator, child, parent, tk.moves)
    extra = result.extra
    assert extra["inherited"] is True and extra["function_preserving"] == "exact"
    assert extra["inherited_from"] == arch.hash and result.epochs == 1  # inherit_epochs
    # epoch 0 is the inherited network as it is: the parent's accuracy, exactly (same function)
    assert extra["history"][0]["epoch"] == 0
    assert extra["history"][0]["valid_accuracy"] == pytest.approx(parent_result.valid_accuracy)
    assert weights is not None and set(weights) == set(child.to_torch().state_dict())
    # Task is plain data: the inheritance travels to a worker process
    task = Task("evaluate", child.to_json(), "torch", {}, keep_weights=True, inherit=parent)
    assert pickle.loads(pickle.dumps(task)).inherit.parent_hash == arch.hash


@pytest.mark.slow
def test_falling_back_to_training_from_scratch_is_recorded(parent_and_child):
    tk, evaluator, arch, parent_result, state, move, child = parent_and_child
    none = ParentWeights(None, None, None, (), "no ancestor evaluated before it has stored weights")
    result, _ = evaluate_with_parent(evaluator, child, none, tk.moves)
    assert result.extra["inherited"] is False and result.extra["function_preserving"] == "none"
    assert result.extra["inherit_reason"] == none.reason and result.epochs == 1
    # an approximate start (a narrowed conv) far below its parent, with inherit_damaged = "scratch" (the
    # behaviour before recovery): dropped, trained from scratch
    narrow = Move("scale", {"position": 0, "attribute": "channels", "value": 8})
    picky = TorchEvaluator(
        datasets=tk.datasets, epochs=1, inherit_epochs=1, threads=1, inherit_max_drop=0.0, inherit_damaged="scratch"
    )
    parent = ParentWeights(arch.hash, arch.to_json(), state, (narrow.to_json(),), "", 1.0)
    result, _ = evaluate_with_parent(picky, narrow.apply(arch, tk.moves), parent, tk.moves)
    assert result.extra["inherited"] is False and result.extra["function_preserving"] == "approximate"
    assert "trained from scratch" in result.extra["inherit_reason"] and "history" in result.extra
    assert result.extra["history"][0]["epoch"] == 1  # no epoch 0: the inherited start was dropped
    assert result.extra["inherit_fallback"]["parent_valid_accuracy"] == 1.0
    assert result.extra["recovery"] is False


def test_recovery_epochs_default_to_half_of_the_epochs_rounded_up():
    assert [recovery_epochs({"epochs": e, "inherit_recovery_epochs": None}) for e in (1, 2, 3, 8, 15)] == [
        1,
        1,
        2,
        4,
        8,
    ]
    assert recovery_epochs({"epochs": 8, "inherit_recovery_epochs": 3}) == 3
    with pytest.raises(ConfigError, match="inherit_damaged"):
        TorchEvaluator(inherit_damaged="retrain")


@pytest.mark.slow
def test_a_damaged_approximate_start_is_recovered_from_its_inherited_weights(parent_and_child):
    tk, evaluator, arch, parent_result, state, move, child = parent_and_child
    narrow = Move("scale", {"position": 0, "attribute": "channels", "value": 8})
    small = narrow.apply(arch, tk.moves)
    parent = ParentWeights(arch.hash, arch.to_json(), state, (narrow.to_json(),), "", 1.0)  # any drop damages
    options = {"datasets": tk.datasets, "epochs": 3, "inherit_epochs": 1, "threads": 1, "inherit_max_drop": 0.0}
    options["inherit_repair"] = False  # the repair before it has its own tests (test_repair.py)
    result, weights = evaluate_with_parent(TorchEvaluator(**options), small, parent, tk.moves)
    extra = result.extra
    assert extra["inherited"] is True and extra["function_preserving"] == "approximate"
    assert extra["recovery"] is True and extra["inherited_from"] == arch.hash
    assert "recovered for 2 epochs" in extra["inherit_reason"] and result.epochs == 2  # ceil(3 / 2)
    assert extra["inherit_recovery"] == {
        "valid_accuracy": extra["history"][0]["valid_accuracy"],
        "parent_valid_accuracy": 1.0,
        "epochs": 2,
    }
    assert [h["epoch"] for h in extra["history"]] == [0, 1, 2] and weights is not None
    # the recovery is a fine-tune from the inherited weights at the full rate: the same run as the short
    # fine-tune (never damaged) given the recovery's epochs and lr
    same = TorchEvaluator(**{**options, "inherit_max_drop": 1.0, "inherit_epochs": 2, "inherit_lr": 0.2})
    plain, _ = evaluate_with_parent(same, small, parent, tk.moves)
    assert plain.extra["recovery"] is False and "inherit_reason" not in plain.extra
    assert [h["valid_accuracy"] for h in plain.extra["history"]] == [h["valid_accuracy"] for h in extra["history"]]
    assert plain.valid_accuracy == result.valid_accuracy and plain.test_accuracy == result.test_accuracy


@pytest.mark.slow
def test_training_from_inherited_weights_clips_the_gradient_norm():
    """A start whose loss is steep (here: the trained head's weights scaled 100x, as a refit layer feeding no
    batch norm can leave it) blows up at a full-rate step and falls to chance; with the gradient's norm clipped
    (the default for inherited weights) it keeps what it had. Training from scratch is never clipped."""
    tk = default_toolkit()
    arch = tk.seed("simple-cnn")
    base = {"datasets": tk.datasets, "epochs": 2, "inherit_epochs": 1, "inherit_lr": 0.2, "threads": 1}
    parent, state = TorchEvaluator(**base).evaluate_with_weights(arch)
    assert "grad_clip" not in parent.extra
    steep = {k: v * 100 if k.startswith("layers.linear") and k.endswith("weight") else v for k, v in state.items()}
    clipped, _ = TorchEvaluator(**base).evaluate_with_weights(arch, init_state=steep)
    free, _ = TorchEvaluator(**base, inherit_grad_clip=None).evaluate_with_weights(arch, init_state=steep)
    start = clipped.extra["history"][0]["valid_accuracy"]
    assert start == free.extra["history"][0]["valid_accuracy"] > 0.8
    assert free.extra["history"][1]["valid_accuracy"] < 0.5 and "grad_clip" not in free.extra
    assert clipped.extra["history"][1]["valid_accuracy"] > start - 0.05
    assert clipped.extra["grad_clip"] == {"max_norm": 1.0, "clipped_steps": 40, "steps": 40}


def _digits_doc(tmp_path, inherit: bool) -> dict:
    return {
        "name": "inherit",
        "seed_network": "simple-cnn",
        "dataset": "digits",
        "evaluations": 5,
        "random_seed": 3,
        "output": str(tmp_path),
        "search": {"per_round": 2, "inherit_weights": inherit},
        "strategy": {"name": "random", "options": {"oversample": 1}},
        "evaluator": {
            "name": "torch",
            "options": {"epochs": 2, "inherit_epochs": 1, "inherit_recovery_epochs": 2, "threads": 1},
        },
        "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 10}}},
        "devices": {"cpu": {"device": "cpu", "time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }


@pytest.mark.slow
def test_a_search_inherits_records_it_and_resumes_to_the_same_results(tmp_path):
    full = run_search(_digits_doc(tmp_path, True), progress=False, outputs=False)
    extras = [e.result["extra"] for e in full.evaluated]
    assert all({"inherited", "function_preserving"} <= set(x) for x in extras)
    assert extras[0]["inherited"] is False  # the seed
    inherited = [(e, x) for e, x in zip(full.evaluated, extras) if x["inherited"]]
    assert inherited, [x.get("inherit_reason") for x in extras]
    for e, x in inherited:
        # fine-tuned for inherit_epochs (1), or a damaged start recovered for inherit_recovery_epochs (2)
        assert e.result["epochs"] == (2 if x["recovery"] else 1)
        assert x["function_preserving"] in ("exact", "approximate")
        assert x["recovery"] is ("inherit_recovery" in x)
        assert x["inherited_from"] in {o.hash for o in full.evaluated[: e.seq]}
    # cut the store back to what a kill after 3 evaluations leaves, resume: the same children inherit the same
    # weights and train to the same results
    cut = tmp_path / "cut"
    cut_run(full.run_dir, cut, 3, tables=("predictor_data", "weights")).close()
    resumed = run_search(None, resume=cut, progress=False, outputs=False)
    assert resumed.counters.evaluations_replayed == 3
    assert [e.hash for e in resumed.evaluated] == [e.hash for e in full.evaluated]
    for a, b in zip(resumed.evaluated, full.evaluated):
        assert a.result["valid_accuracy"] == b.result["valid_accuracy"]
        assert a.result["extra"]["inherited"] == b.result["extra"]["inherited"]
        assert a.result["extra"].get("recovery") == b.result["extra"].get("recovery")


def _config_with_a_seed_file(tmp_path) -> str:
    """The example config, copied with its seed as an IR file beside it (a relative path)."""
    default_toolkit().seed("simple-cnn").save(tmp_path / "seed.json")
    text = (REPO_ROOT / "examples" / "digits-cpu.toml").read_text()
    config = tmp_path / "digits.toml"
    config.write_text(text.replace('seed_network = "simple-cnn"', 'seed_network = "seed.json"'))
    assert 'seed_network = "seed.json"' in config.read_text()
    return str(config)


@pytest.mark.slow
def test_bench_inheritance_cli_prints_the_figures(tmp_path):
    args = ["bench", "inheritance", "--seeds", "1", "--evaluations", "2", "--epochs", "1", "--inherit-epochs", "1"]
    args += ["--config", _config_with_a_seed_file(tmp_path)]  # its seed file resolves against its folder
    proc = subprocess.run(
        [sys.executable, "-m", "na_toolkit", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert {"accuracy_gap_points", "training_cost_ratio", "params", "machine"} <= set(doc)
    row = doc["seeds"][0]
    assert row["scratch"]["epochs"] == 2 and row["scratch"]["from_scratch"] == 2
    assert row["inherit"]["epochs"] == 2 and doc["training_cost_ratio"] == 1.0  # 1 epoch either way here
    assert row["inherit"]["recovered"] + row["inherit"]["from_scratch"] <= 2 and "recovery_epochs" in row["inherit"]


@pytest.mark.slow
def test_bench_inheritance_compares_each_recovered_record_with_training_from_scratch(tmp_path):
    from na_toolkit.bench.inheritance import recovered_vs_scratch

    doc = _digits_doc(tmp_path, True)
    doc["search"]["moves"] = ["remove"]  # approximate children, damaged with any drop
    doc["evaluator"]["options"]["inherit_max_drop"] = 0.0
    tk = default_toolkit()
    result = run_search(doc, toolkit=tk, progress=False, outputs=False)
    recovered = [e for e in result.evaluated if e.result["extra"].get("recovery")]
    assert recovered, [e.result["extra"].get("inherit_reason") for e in result.evaluated]
    rows = recovered_vs_scratch(result, "torch", tk)
    assert [r["arch_hash"] for r in rows] == [e.hash for e in recovered]
    first = recovered[0]
    assert rows[0]["record"] == 100.0 * first.result["valid_accuracy"]
    again = TorchEvaluator(datasets=tk.datasets, **first.result["extra"]["options"]).evaluate(first.candidate.arch)
    assert rows[0]["scratch"] == 100.0 * again.valid_accuracy and "inherit_recovery" not in again.extra


@pytest.mark.slow
def test_bench_inheritance_recovery_cli_measures_recovery_per_epoch(tmp_path):
    args = ["bench", "inheritance-recovery", "--seeds", "1", "--children", "1", "--budgets", "1,2"]
    args += ["--epochs", "2", "--inherit-max-drop", "0", "--config", _config_with_a_seed_file(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "na_toolkit", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert set(doc["recovery_gap_points"]) == {"1", "2"} and len(doc["children"]) == 1
    child = doc["children"][0]
    assert child["start"] < child["parent"] and set(child["recovered"]) == {"1", "2"}
    assert doc["recovery_gap_points"]["2"] == pytest.approx(child["scratch"] - child["recovered"]["2"])


@pytest.mark.slow
def test_a_start_whose_fine_tune_diverges_trains_from_scratch_with_its_cost_recorded(parent_and_child):
    tk, evaluator, arch, parent_result, state, move, child = parent_and_child
    parent = ParentWeights(arch.hash, arch.to_json(), state, (move.to_json(),), "", parent_result.valid_accuracy)
    wild = TorchEvaluator(datasets=tk.datasets, epochs=1, inherit_epochs=2, inherit_lr=1e12, threads=1)
    result, _ = evaluate_with_parent(wild, child, parent, tk.moves)
    extra = result.extra
    assert extra["inherited"] is False and extra["function_preserving"] == "exact"
    assert "diverged" in extra["inherit_reason"] and extra["diverged"] is False  # the run from scratch
    wasted = extra["inherit_fallback"]
    assert wasted["diverged"] is True and wasted["epochs"] >= 1 and wasted["train_cpu_time_s"] > 0
    assert result.epochs == 1 and extra["history"][0]["epoch"] == 1
