"""`na-toolkit bench controller`: neural-architect's ablations really behave differently (the frozen policy
never updates, walks only proposes no policy candidate, policy only no walk), the scoring budget is kept,
the JSON has the issue's keys; and a search's run folder shows the controller's learning (controller.png,
summary.json's `controller` series, kept in the checkpointed state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

from conftest import default_toolkit
from na_toolkit.search.loop import run_search
from na_toolkit.search.outputs import strategy_report
from na_toolkit.store.sqlite import SQLiteRunStore

BUDGET = 3


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from conftest import run_na_toolkit

    out = tmp_path_factory.mktemp("bench") / "controller.json"
    res = run_na_toolkit(
        "bench",
        "controller",
        "--seeds",
        "1",
        "--evaluations",
        "10",
        "--per-round",
        "5",
        "--settings",
        "unconstrained",
        "--budgets",
        str(BUDGET),
        "--update-repeats",
        "0",
        "--json",
        "--out",
        out,
    )
    assert res.returncode == 0, res.stderr
    doc = res.json()
    assert json.loads(out.read_text()) == doc
    return doc, res.stderr


def test_json_has_the_issue_keys(bench):
    doc, stderr = bench
    for key in (
        "settings_won_at_budget_10",
        "settings_lost_at_budget_10",
        "neural_architect_cpu_s_per_search",
        "update_s_at_500_nodes",
        "variants",
        "params",
        "machine",
    ):
        assert key in doc
    per = doc["variants"]["unconstrained"][str(BUDGET)]
    assert set(per) == {"trained", "frozen", "walks-only", "policy-only", "random"}
    for name, f in per.items():
        assert f["test_accuracy"]["n"] == 1 and 80 < f["test_accuracy"]["mean"] <= 100
        assert len(f["valid_accuracy_per_seed"]) == 1
        assert f["valid_accuracy_per_seed"][0] == pytest.approx(f["valid_accuracy"]["mean"], abs=1e-3)
        if name != "trained":
            assert "wilcoxon_p_vs_trained" in f and "trained_minus_variant" in f
            # the same comparison on the validation accuracy the search maximises
            valid = f["by_valid_accuracy"]
            gap = per["trained"]["valid_accuracy"]["mean"] - f["valid_accuracy"]["mean"]
            assert valid["trained_minus_variant"] == pytest.approx(gap, abs=1e-3)
            assert "wilcoxon_p_vs_trained" in valid
    assert "walks-only" in stderr and "Δ trained" in stderr and "Δ valid" in stderr  # the human table
    # the ceiling: how far each variant lies below what the table allows, from the table itself
    ceiling = doc["ceiling"]["unconstrained"]
    assert ceiling["feasible_optimum_test"] == ceiling["optimum_test"] == pytest.approx(94.3733)
    assert ceiling["perfect_search_test"] == ceiling["feasible_best_valid_test"]
    room = ceiling["room_below_optimum"][str(BUDGET)]
    for name, f in per.items():
        assert room[name] == pytest.approx(ceiling["feasible_optimum_test"] - f["test_accuracy"]["mean"], abs=1e-3)
    reachable = all(room[v] >= 0.2 for v in ("frozen", "walks-only"))
    assert ceiling["win_reachable"][str(BUDGET)] is reachable
    # every (setting, seed) pair at once: here one setting and one seed, so one pair per variant
    pooled = doc["pooled_over_settings"][str(BUDGET)]
    assert set(pooled) == set(per) - {"trained"}
    for name, p in pooled.items():
        assert p["pairs"] == 1 and p["pairs_won"] + p["pairs_lost"] <= 1
        assert p["trained_minus_variant"] == pytest.approx(per[name]["trained_minus_variant"], abs=1e-3)
        by_valid = doc["pooled_over_settings_by_valid_accuracy"][str(BUDGET)][name]
        assert by_valid["trained_minus_variant"] == pytest.approx(
            per[name]["by_valid_accuracy"]["trained_minus_variant"], abs=1e-3
        )


def test_variants_differ_in_behaviour_and_keep_the_scoring_budget(bench):
    per = bench[0]["variants"]["unconstrained"][str(BUDGET)]
    assert per["trained"]["controller_updates_mean"] > 0
    assert per["policy-only"]["controller_updates_mean"] > 0
    for name in ("frozen", "walks-only", "random"):
        assert per[name]["controller_updates_mean"] == 0
    assert per["walks-only"]["policy_proposals_mean"] == 0 and per["walks-only"]["walk_proposals_mean"] > 0
    assert per["policy-only"]["walk_proposals_mean"] == 0 and per["policy-only"]["policy_proposals_mean"] > 0
    assert per["random"]["policy_proposals_mean"] > 0  # uniformly random moves in the policy's place
    assert all(f["fill_proposals_mean"] >= 0 for f in per.values())  # fill-ups: not the variant's own
    for f in per.values():
        assert 0 < f["max_scored_per_evaluation"] <= BUDGET


def test_fill_up_walks_are_counted_apart_from_the_policys_proposals():
    """One single-move episode per update finds fewer than n new networks: random walks fill the ask up
    (`_fill`). They are counted as fill-up proposals, never as the policy's, so the policy-only ablation
    shows how much of it was not the policy."""
    from na_toolkit.store.memory import MemoryRunStore

    doc = _search(Path("."), episodes=1, episode_length=1, explore_episodes=0)
    store = MemoryRunStore("f", doc)
    result = run_search(doc, toolkit=default_toolkit(), progress=False, outputs=False, store=store)
    state = store.load_checkpoint("strategy")[1]
    totals = state["report"]["totals"]
    assert totals["fill_proposals"] > 0 and totals["walk_proposals"] == 0
    assert "neural-architect:random" in {e.candidate.origin for e in result.evaluated}
    # every proposal returned to the loop is counted once, as the policy's or as a fill-up
    assert totals["policy_proposals"] + totals["fill_proposals"] == state["proposed_total"]


def _search(tmp_path: Path, **options) -> dict:
    doc = {
        "name": "ctl",
        "seed_network": "nb201",
        "evaluations": 10,
        "random_seed": 1,
        "output": str(tmp_path),
        "search": {"per_round": 5, "moves": ["set_edge_op"], "evaluate_seed": False},
        "strategy": {"name": "neural-architect", "options": {"episode_length": 6, "episodes": 6, **options}},
        "evaluator": {"name": "nb201-table", "options": {"dataset": "c10", "epochs": 200}},
        "predictors": {"accuracy": {"name": "bayesian-ridge", "options": {}}},
    }
    return doc


def test_run_folder_shows_the_controller_learning(tmp_path):
    result = run_search(_search(tmp_path, scoring_budget=BUDGET), toolkit=default_toolkit(), progress=False)
    run_dir = Path(result.run_dir)
    assert (run_dir / "controller.png").stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    ctl = summary["controller"]
    assert ctl["policy"] == "trained" and ctl["scoring_budget"] == BUDGET and ctl["updates"] > 0
    series = ctl["series"]
    assert len(series) == ctl["updates"]
    assert all({"entropy", "value_loss", "reward_mean"} <= set(e) for e in series if e["scored"] > 0)
    assert ctl["totals"]["max_scored_per_n"] <= BUDGET
    # the series is part of the strategy's checkpointed state (what a resumed run continues from)
    with SQLiteRunStore.open(run_dir) as store:
        assert strategy_report(store) == ctl


def test_unknown_variant_is_refused(run_cli):
    line = run_cli("bench", "controller", "--variants", "trained,bogus", "--seeds", "1").error_line()
    assert "bogus" in line and "walks-only" in line


def test_pooled_pairs_every_setting_and_seed_and_skips_missing_results():
    from na_toolkit_nb201.bench.controller import pooled

    def per(trained, frozen):
        return {
            "10": {
                "trained": {"test_accuracy_per_seed": trained},
                "frozen": {"test_accuracy_per_seed": frozen},
            }
        }

    figures = {"a": per([94.0, 93.0, 92.0], [93.5, 93.0, 92.5]), "b": per([91.0, None], [90.0, 90.0])}
    got = pooled(figures)["10"]["frozen"]
    # pairs: (94, 93.5) (93, 93) (92, 92.5) (91, 90); the run without a feasible result is left out
    assert got["pairs"] == 4 and got["pairs_won"] == 2 and got["pairs_lost"] == 1
    assert got["trained_minus_variant"] == pytest.approx((0.5 + 0.0 - 0.5 + 1.0) / 4)
    assert 0 < got["wilcoxon_p_vs_trained"] <= 1
    # a JSON from before the per-seed validation accuracies: nothing to pair there, no error
    assert pooled(figures, "valid_accuracy_per_seed")["10"]["frozen"]["pairs"] == 0


def test_any_latency_column_of_the_table_is_a_setting():
    from na_toolkit_nb201.bench.controller import _settings
    from na_toolkit_nb201.table import load_table

    table = load_table(None)
    got = _settings(["unconstrained", "raspi4", "lat_eyeriss"], table)
    assert got == {"unconstrained": None, "lat_raspi4": "lat_raspi4", "lat_eyeriss": "lat_eyeriss"}


def test_unknown_setting_is_refused_naming_the_tables_devices(run_cli):
    line = run_cli("bench", "controller", "--settings", "unconstrained,toaster", "--seeds", "1").error_line()
    assert "lat_toaster" in line and "lat_pixel3" in line and "unconstrained" in line


def test_mean_seeking_variant_is_the_earlier_default_and_not_run_unless_asked():
    from na_toolkit.search.neural_architect import NeuralArchitectStrategy
    from na_toolkit_nb201.bench.controller import DEFAULT_VARIANTS, VARIANTS

    assert "mean-seeking" in VARIANTS and "mean-seeking" not in DEFAULT_VARIANTS
    options = NeuralArchitectStrategy.Options(**VARIANTS["mean-seeking"])
    assert not options.risk_seeking and options.learn_from_evaluations is False
    defaults = NeuralArchitectStrategy.Options()
    assert defaults.risk_seeking and defaults.learn_from_evaluations  # what the variant turns off
