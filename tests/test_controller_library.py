"""The controller and the embedding used as a library (docs/controller.md, "Library use"), and a strategy
plugin built on the neural-architect pieces (docs/plugin_hooks.md, `na_register_strategies`).

A caller's mistakes are `NAToolkitError`s that say what to do, raised before any torch code runs; a NaN
reward never reaches the weights; a restored controller proposes what the original does; a variant that
picks the controller's top-k values is written against public names only, and its searches, like the
built-in strategy's, are a function of their seed.
"""

from __future__ import annotations

import copy
import sys
import types

import numpy as np
import pytest
import torch
from pydantic import Field

import na_toolkit
from conftest import NB201_SEARCH, config_doc, default_toolkit, evaluated_in_order
from na_toolkit.controller.action_space import ActionSpace
from na_toolkit.controller.choosers import sample, top_k
from na_toolkit.controller.policy import Controller
from na_toolkit.embedding import ArchitectureTokenizer, make_network_embedding
from na_toolkit.errors import ConfigError, DataError
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.neural_architect import NeuralArchitectStrategy
from na_toolkit.search.reward import Budget, compute_reward
from na_toolkit.search.strategy import Score
from na_toolkit.timemodels import get_time_model
from na_toolkit.validation import validate_options

MOVES = ("insert_conv", "scale")


def _controller(seed: int = 0, tokenizer=None, **kw) -> Controller:
    tk = default_toolkit()
    tokenizer = tokenizer or ArchitectureTokenizer.for_registry(tk.layer_types)
    return Controller(tokenizer, ActionSpace.from_move_types([tk.moves.get(n) for n in MOVES]), seed, **kw)


@pytest.fixture(scope="module")
def batch():
    """A controller, 4 states (the seed and networks it edited), its decisions, their next states."""
    tk = default_toolkit()
    ctrl = _controller()
    rng = np.random.default_rng(0)
    seed = tk.seed("simple-cnn")
    states = [seed, seed]
    states += [d.move.apply(s, tk.moves) for s, d in zip(states, ctrl.decide(states, rng))]
    decisions = ctrl.decide(states, rng)
    nexts = [d.move.apply(s, tk.moves) for s, d in zip(states, decisions)]
    return ctrl, states, decisions, nexts


def _weights(ctrl: Controller) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in ctrl.net.state_dict().items()}


def test_a_library_loop_with_the_toolkits_reward_and_a_time_model_and_a_restored_controller():
    """The documented loop end to end: embed, decide, reward with compute_reward and the roofline time
    model, update; a controller restored from the state dict decides exactly as the original, before and
    after both make the same update."""
    tk = default_toolkit()
    ctrl = _controller()
    tm = get_time_model("roofline", tk, device="h100-sxm")
    budgets = [Budget("latency_ms@h100", 0.05), Budget("model_size_bytes", 4e5)]
    rng = np.random.default_rng(0)
    states = [tk.seed("simple-cnn")] * 6
    for _ in range(2):
        decisions = ctrl.decide(states, rng)
        nexts = [d.move.apply(s, tk.moves) for s, d in zip(states, decisions)]
        metrics = [
            {
                "accuracy": 0.9,
                "latency_ms@h100": tm.estimate(a, batch_size=1).latency_ms,
                "model_size_bytes": a.cost.model_size_bytes,
            }
            for a in nexts
        ]
        rewards = np.array([compute_reward(m, budgets).reward for m in metrics])
        info = ctrl.update(states, decisions, nexts, rewards)
        assert all(np.isfinite(v) for v in info.values())
        states = nexts
    h = ctrl.embed(states)
    assert len(h) == 6 and h[0][0].shape == (64,) and h[0][1].shape == (len(states[0].nodes), 64)

    restored = _controller(seed=99)  # other initial weights: the state dict must replace them all
    restored.load_state_dict(copy.deepcopy(ctrl.state_dict()))
    moves = [[d.move for d in c.decide(states, np.random.default_rng(5))] for c in (ctrl, restored)]
    assert moves[0] == moves[1]
    decisions = ctrl.decide(states, np.random.default_rng(6))
    nexts = [d.move.apply(s, tk.moves) for s, d in zip(states, decisions)]
    for c in (ctrl, restored):
        c.update(states, decisions, nexts, np.linspace(0.0, 1.0, len(states)))
    moves = [[d.move for d in c.decide(nexts, np.random.default_rng(7))] for c in (ctrl, restored)]
    assert moves[0] == moves[1]


def test_a_nan_reward_is_refused_before_it_reaches_the_weights(batch):
    ctrl, states, decisions, nexts = batch
    before = _weights(ctrl)
    for bad in (np.array([np.nan, 0.0, 1.0, 2.0]), np.array([np.inf, 0.0, 1.0, 2.0])):
        with pytest.raises(DataError, match=r"rewards hold NaN or infinite values \(transitions \[0\]\)"):
            ctrl.update(states, decisions, nexts, bad)
    with pytest.raises(DataError, match="advantages hold NaN"):
        ctrl.update(states, decisions, nexts, np.arange(4.0), advantages=np.full(4, np.nan))
    # finite, but their standardisation overflows (only numpy's RuntimeWarning before, and the step was taken)
    with pytest.raises(DataError, match=r"rewards from -1e\+300 to 1e\+300 overflow when standardised"):
        ctrl.update(states, decisions, nexts, np.array([1e300, -1e300, 0.0, 0.0]))
    after = _weights(ctrl)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # and the controller still learns from finite rewards, given as a list or a torch tensor
    for rewards in ([0.0, 1.0, 2.0, 3.0], torch.arange(4.0)):
        info = ctrl.update(states, decisions, nexts, rewards)
        assert all(np.isfinite(v) for v in info.values())
    assert all(torch.isfinite(v).all() for v in ctrl.net.state_dict().values())


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda c, s, d, n: c.update([], [], [], []), DataError, "an update needs at least one transition"),
        (lambda c, s, d, n: c.update(s, d, n[:2], np.arange(4.0)), DataError, "got 4 states, 2 next_states"),
        (lambda c, s, d, n: c.update(s, d, n, np.arange(2.0)), DataError, r"expected shape \(4,\), got \(2,\)"),
        (lambda c, s, d, n: c.update(s, d, n, np.ones((4, 1))), DataError, r"got \(4, 1\)"),
        (lambda c, s, d, n: c.update(s, d, n, ["a", 1, 2, 3]), DataError, "rewards must be numbers, got 'a'"),
        (lambda c, s, d, n: c.update(s, [None, *d[1:]], n, np.arange(4.0)), DataError, "decision 0 is None"),
        (lambda c, s, d, n: c.update(s, d[::-1], n, np.arange(4.0)), DataError, "was not made for state"),
        (lambda c, s, d, n: c.update(s, d, n, np.arange(4.0), gamma=float("nan")), DataError, "gamma must be"),
        (lambda c, s, d, n: c.update(s[0], d, n, np.arange(4.0)), DataError, "got a single Architecture"),
        (lambda c, s, d, n: c.decide(["simple-cnn"], np.random.default_rng(0)), DataError, "item 0 is a str"),
        (lambda c, s, d, n: c.decide(s, 0), DataError, "rng must be a numpy Generator"),
        (lambda c, s, d, n: c.load_state_dict({}), ConfigError, "lacks"),
    ],
)
def test_misuse_is_a_clear_error_not_a_traceback_from_torch(batch, call, error, message):
    ctrl, states, decisions, nexts = batch
    with pytest.raises(error, match=message):
        call(ctrl, states, decisions, nexts)


def test_an_empty_batch_decides_nothing_and_a_fresh_controller_cannot_update_on_nothing():
    ctrl = _controller(seed=3)
    assert ctrl.decide([], np.random.default_rng(0)) == [] and ctrl.embed([]) == [] and ctrl.embed([], grad=True) == []
    with pytest.raises(DataError, match="run episodes with decide"):
        ctrl.update([], [], [], np.array([]))
    assert ctrl.updates == 0


def test_decisions_of_another_controller_are_refused():
    tk = default_toolkit()
    other = Controller(
        ArchitectureTokenizer.for_registry(tk.layer_types),
        ActionSpace.from_move_types([tk.moves.get(n) for n in ("remove", "insert_add")]),
        seed=0,
    )
    states = [tk.seed("simple-cnn")] * 3
    decisions = other.decide(states, np.random.default_rng(1))
    nexts = [d.move.apply(s, tk.moves) for s, d in zip(states, decisions)]
    with pytest.raises(DataError, match=r"not made by a controller of these moves \(\['insert_conv', 'scale'\]\)"):
        _controller().update(states, decisions, nexts, np.arange(3.0))


def test_decisions_swapped_between_networks_of_the_same_length_are_refused():
    """Two networks of one length have masks of the same lengths: each decision carries the hash of the network
    decide() made it for, so a swap is a DataError instead of an update on the wrong log-probabilities."""
    tk = default_toolkit()
    ctrl = _controller()
    a = tk.seed("simple-cnn")
    b = tk.moves.get("scale").apply(a, position=0, attribute="channels", value=64)
    assert len(a.nodes) == len(b.nodes) and a.hash != b.hash
    da, db = ctrl.decide([a, b], np.random.default_rng(0))
    assert (da.state, db.state) == (a.hash, b.hash)
    before = _weights(ctrl)
    with pytest.raises(
        DataError, match=f"decision 0 .* was not made for state 0 .network {a.hash}. but for network {b.hash}"
    ):
        ctrl.update([a, b], [db, da], [a, b], np.array([0.0, 1.0]))
    assert all(torch.equal(v, _weights(ctrl)[k]) for k, v in before.items())
    ctrl.update([a, b], [da, db], [a, b], np.array([0.0, 1.0]))  # in order: learns
    assert ctrl.updates == 1


def test_a_layer_type_the_vocabulary_does_not_know_is_refused_by_name():
    tk = default_toolkit()
    declared = {n: tk.layer_types.get(n).embedded_attrs() for n in tk.layer_types.names() if n != "conv2d"}
    ctrl = _controller(tokenizer=ArchitectureTokenizer(declared))
    with pytest.raises(DataError, match=r"layer type\(s\) 'conv2d' that the controller's embedding vocabulary"):
        ctrl.decide([tk.seed("simple-cnn")], np.random.default_rng(0))


def test_bad_constructor_arguments_and_embeddings_that_do_not_fit_are_config_errors():
    tk = default_toolkit()
    tokenizer = ArchitectureTokenizer.for_registry(tk.layer_types)
    other = ArchitectureTokenizer(dict.fromkeys(tk.layer_types.names(), ()))
    for kw, message in [
        ({"seed": None}, "seed must be an int"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"grad_steps": 0}, "grad_steps must be an int >= 1"),
        ({"embedding": make_network_embedding(tokenizer, net_dim=32)}, "net_dim 32 .the controller's 64"),
        ({"embedding": make_network_embedding(other)}, "do not fit the tokenizer's vocabulary"),
        ({"embedding": make_network_embedding(tokenizer).double()}, "cpu/float64"),
        ({"embedding": make_network_embedding(tokenizer).to("meta")}, "on the CPU in float32.*meta/float32"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _controller(**{"seed": 0, **kw})
    with pytest.raises(ConfigError, match=r"move 0 is a str, not a MoveType.*toolkit.moves.get\('scale'\)"):
        ActionSpace.from_move_types(["scale"])


def test_a_saved_state_that_does_not_fit_is_refused_whole_and_leaves_the_controller_as_it_was(batch):
    """A controller saved with train_embedding = true loaded into one with false (and the reverse): its Adam
    holds the moments of other weights. torch's load raised a bare ValueError after the weights were already
    replaced; the check comes first and names the setting."""
    _ctrl, states, decisions, nexts = batch
    saved = {}
    for train in (True, False):
        ctrl = _controller(seed=5, train_embedding=train)
        ctrl.update(states, ctrl.decide(states, np.random.default_rng(2)), nexts, np.arange(4.0))
        saved[train] = ctrl.state_dict()
    for train in (True, False):
        other = _controller(seed=6, train_embedding=not train)
        before = _weights(other)
        with pytest.raises(ConfigError, match=f"saved with train_embedding = {str(train).lower()}"):
            other.load_state_dict(saved[train])
        after = _weights(other)
        assert all(torch.equal(before[k], after[k]) for k in before) and other.updates == 0
        assert not other.optimizer.state_dict()["state"]
    bad = copy.deepcopy(saved[True])
    bad["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)
    with pytest.raises(ConfigError, match="optimizer state of weight 0 does not fit"):
        _controller(seed=6, train_embedding=True).load_state_dict(bad)
    with pytest.raises(ConfigError, match="update count"):
        _controller(seed=6, train_embedding=True).load_state_dict(dict(saved[True], updates=-1))
    same = _controller(seed=6, train_embedding=True)
    same.load_state_dict(saved[True])  # the same setting loads, as before
    assert same.updates == 1


def test_rewards_that_all_agree_leave_the_critics_advantage_alone(batch):
    """A batch whose rewards are all equal standardises to zeros: the actor's advantage is then the critic's
    own gamma V(s') - V(s) (docs/controller.md, "Learning"), whatever the common reward was."""
    _ctrl, states, _decisions, nexts = batch
    for gamma in (0.9, 0.0):
        for reward in (0.7, -3.0):
            ctrl = _controller(seed=7)
            decisions = ctrl.decide(states, np.random.default_rng(4))
            nexts = [d.move.apply(s, default_toolkit().moves) for s, d in zip(states, decisions)]
            with torch.no_grad():
                value = [
                    ctrl.net.value_head(ctrl.net.trunk(torch.stack([e[0] for e in ctrl.embed(a)])))
                    for a in (states, nexts)
                ]
            expected = (gamma * value[1] - value[0]).abs().mean().item()
            info = ctrl.update(states, decisions, nexts, np.full(len(states), reward), gamma=gamma)
            assert info["advantage"] == pytest.approx(expected, rel=1e-4, abs=1e-7) and expected > 0


def test_a_controller_prints_as_one_line_saying_what_it_chooses_among_and_how_far_it_learned(batch):
    _ctrl, states, _decisions, _nexts = batch
    ctrl, frozen = _controller(seed=3), _controller(seed=3, train_embedding=False)
    total = sum(p.numel() for p in ctrl.net.parameters())
    assert repr(ctrl) == (
        f"<Controller moves=['insert_conv', 'scale'] parameters={total} (trained {total}, embedding trained) updates=0>"
    )
    decisions = ctrl.decide(states, np.random.default_rng(1))
    nexts = [d.move.apply(s, default_toolkit().moves) for s, d in zip(states, decisions)]
    ctrl.update(states, decisions, nexts, np.arange(len(states), dtype=float))
    assert repr(ctrl).endswith("updates=1>") and "\n" not in repr(ctrl)
    embedding = sum(p.numel() for p in frozen.net.embedding.parameters())
    assert f"(trained {total - embedding}, embedding frozen)" in repr(frozen)


# ---- choosing values: the extension point of a variant ---------------------------------------------------
def test_top_k_picks_among_the_k_most_probable_admitted_values_and_sample_is_the_default(batch):
    probs = np.array([0.0, 0.1, 0.5, 0.0, 0.3, 0.1])  # zeros: masked values
    rng = np.random.default_rng(0)
    assert {top_k(1)(probs, rng) for _ in range(50)} == {2}
    assert {top_k(2)(probs, rng) for _ in range(200)} == {2, 4}
    assert {top_k(9)(probs, rng) for _ in range(400)} == {1, 2, 4, 5}  # never a masked one
    with pytest.raises(ConfigError, match="top_k takes an int k >= 1"):
        top_k(0)
    ctrl, states, _d, _n = batch
    default = [d.move for d in ctrl.decide(states, np.random.default_rng(4))]
    assert [d.move for d in ctrl.decide(states, np.random.default_rng(4), choose=sample)] == default
    greedy = [[d.move for d in ctrl.decide(states, np.random.default_rng(s), choose=top_k(1))] for s in (1, 2)]
    assert greedy[0] == greedy[1]  # greedy decoding does not depend on the draws

    def masked(probs, rng):  # a chooser of one's own that takes a value the masks removed
        return int(np.argmin(probs))

    with pytest.raises(ConfigError, match="chooser masked picked .* not one the masks admit"):
        ctrl.decide(states, np.random.default_rng(0), choose=masked)


# ---- a strategy plugin on the neural-architect pieces ---------------------------------------------------
class GreedyArchitect(NeuralArchitectStrategy):
    """The variant docs/plugin_hooks.md shows: each step takes one of the controller's top-k values."""

    name = "greedy-architect"
    description = "neural-architect, each move from the controller's top-k values"

    class Options(NeuralArchitectStrategy.Options):
        top_k: int = Field(2, ge=1, description="values each categorical picks from (1: greedy)")

    def __init__(self, context, **options):
        super().__init__(context, **options)
        self._choose = top_k(validate_options(self.Options, self.options, "strategy.options").top_k)

    def decide(self, archs):
        return self.controller.decide(archs, self.context.rng, choose=self._choose)


def _greedy_plugin() -> types.ModuleType:
    module = types.ModuleType("greedy_architect_plugin")

    @na_toolkit.hookimpl
    def na_register_strategies(registry):
        registry.add(GreedyArchitect)

    module.na_register_strategies = na_register_strategies  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("neural-architect", {"episodes": 4, "updates": 2, "explore_episodes": 4}),
        ("neural-architect", {"episodes": 4, "updates": 2, "explore_episodes": 4, "scoring_budget": 8}),
        ("greedy-architect", {"episodes": 4, "updates": 2, "explore_episodes": 2, "top_k": 1}),
    ],
)
def test_the_same_seed_gives_the_same_evaluations_in_the_same_order(strategy, options, tmp_path, monkeypatch):
    pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")
    plugin = _greedy_plugin()
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    toolkit = load_toolkit(extra_plugins=(plugin,))
    runs = [
        evaluated_in_order(config_doc(NB201_SEARCH, tmp_path / str(i), evaluations=9, strategy=s), toolkit)
        for i, s in enumerate([{"name": strategy, "options": options}] * 2)
    ]
    assert len(runs[0]) == 9 and runs[0] == runs[1]
    assert any(origin == strategy for _h, origin, _r in runs[0])  # the policy's own proposals were evaluated


class _Context:
    """The least a strategy needs of a search: the seed, the moves, an rng, nothing evaluated, and a score
    of 0 for every network."""

    def __init__(self, tk):
        self.seed_arch = tk.seed("simple-cnn")
        self.move_types = [tk.moves.get(n) for n in MOVES]
        self.rng = np.random.default_rng(0)
        self.evaluated: dict = {}

    def score(self, archs):
        return [Score(0.0, {"accuracy": 0.0}) for _ in archs]


def test_the_variant_moves_are_the_controllers_greedy_ones():
    """The variant's episodes take the controller's argmax at every head: the same network, asked
    twice with different draws, gets the same move, and it is the one `decide(choose=top_k(1))` gives."""
    context = _Context(default_toolkit())
    strat = GreedyArchitect(context, top_k=1, episodes=3)
    archs = [context.seed_arch] * 3
    first = [d.move for d in strat.decide(archs)]
    assert first == [d.move for d in strat.decide(archs)] and len({str(m) for m in first}) == 1
    assert first == [d.move for d in strat.controller.decide(archs, np.random.default_rng(9), choose=top_k(1))]


# ---- the embedding used directly -------------------------------------------------------------------------
def test_the_embedding_used_directly_says_what_is_wrong_and_embeds_an_empty_batch_as_empty():
    tk = default_toolkit()
    tok = ArchitectureTokenizer.for_registry(tk.layer_types)
    emb = make_network_embedding(tok)
    seed = tk.seed("simple-cnn")
    assert emb.embed(tok, [seed, tk.seed("resnet-cifar")]).shape == (2, 64)
    assert emb.embed(tok, []).shape == (0, 64)
    tokens, lengths = tok.batch([])
    assert tokens.shape == (0, 0, tok.max_tokens) and lengths.shape == (0,)
    with pytest.raises(DataError, match="got a single Architecture"):
        emb.embed(tok, seed)
    with pytest.raises(DataError, match="item 0 is a str, not an Architecture"):
        tok.encode("simple-cnn")
    other = ArchitectureTokenizer(dict.fromkeys(tk.layer_types.names(), ()))
    with pytest.raises(ConfigError, match="do not fit the tokenizer's vocabulary"):
        make_network_embedding(other).embed(tok, [seed])
    with pytest.raises(ConfigError, match="grad_steps must be an int >= 1"):
        emb.network(torch.zeros(1, 3, 32), torch.tensor([3]), grad_steps=0)
    with pytest.raises(ConfigError, match=r"for_registry takes a layer-type registry \(toolkit.layer_types\)"):
        ArchitectureTokenizer.for_registry(tk)
    with pytest.raises(ConfigError, match="takes each layer type's embedded attributes by name"):
        ArchitectureTokenizer(["conv2d"])


def test_a_variant_whose_decide_drops_networks_is_a_component_error():
    """`_episodes` zips the networks with what `decide` returns: a shorter answer used to drop the rest of
    the episodes' moves without a word."""
    from na_toolkit.errors import ComponentError

    class Short(GreedyArchitect):
        def decide(self, archs):
            return super().decide(archs)[:1]

    with pytest.raises(ComponentError, match=r"decide\(\) returned 1 decisions for 3 networks"):
        Short(_Context(default_toolkit()), episodes=3, updates=1).ask(2)


def test_budget_only_options_set_off_need_no_scoring_budget(tmp_path):
    """`bench controller --variants mean-seeking` at budget none stopped with 'risk_seeking, learn_from_evaluations
    apply under a scoring budget only' after its other searches, writing nothing: set off (0, false) they are what
    they are without a budget, so only an option set on is refused, named once as the config's key."""
    from na_toolkit.search import run_search

    base = {
        "name": "ms", "seed_network": "simple-cnn", "evaluations": 2, "output": str(tmp_path),
        "search": {"per_round": 1, "moves": ["scale"]}, "evaluator": {"name": "synthetic"},
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }  # fmt: skip
    off = {"name": "neural-architect", "options": {"risk_seeking": 0, "learn_from_evaluations": False}}
    assert len(run_search({**base, "strategy": off}, toolkit=default_toolkit(), progress=False).evaluated) == 2
    on = {"name": "neural-architect", "options": {"risk_seeking": 0.2}}
    with pytest.raises(ConfigError) as err:
        run_search({**base, "strategy": on}, toolkit=default_toolkit(), progress=False)
    assert str(err.value).startswith("strategy.options: risk_seeking apply under a scoring budget only")


def test_a_stall_with_feasible_networks_does_not_blame_the_budget():
    from na_toolkit.search.diagnostics import stalled_reason

    budget = Budget("latency_ms@pixel3", 10.0, 1.0, True)
    dry = stalled_reason(3, 25, 40, 15, {budget: 15}, [budget], feasible=24)
    assert "24 evaluated network(s) meet the budgets, so the strategy found nothing new within them" in dry
    assert "out of reach" not in dry
    assert "may be out of reach from this seed" in stalled_reason(3, 2, 40, 15, {budget: 15}, [budget], feasible=0)


def test_an_unknown_name_with_no_close_one_says_it_may_be_a_missing_plugins():
    from na_toolkit.errors import UnknownComponentError

    with pytest.raises(UnknownComponentError, match="install that plugin here"):
        default_toolkit().strategies.get("hill-climb")


def test_a_scoring_budget_too_large_to_serve_is_refused(tmp_path):
    # 10^6 spent minutes per update building walks to a share of it (over 300 s for one evaluation)
    from na_toolkit.search import run_search

    doc = {
        "name": "sb", "seed_network": "simple-cnn", "evaluations": 2, "output": str(tmp_path),
        "search": {"per_round": 1, "moves": ["scale"]}, "evaluator": {"name": "synthetic"},
        "strategy": {"name": "neural-architect", "options": {"scoring_budget": 1_000_000}},
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"strategy.options.scoring_budget: Input should be less than or equal to "):
        run_search(doc, toolkit=default_toolkit(), progress=False)
    assert not any(tmp_path.iterdir())


def test_zero_advantages_still_move_the_policy_through_the_entropy_bonus_and_the_shared_critic(batch):
    """The risk-seeking update gives most episodes advantage 0: they leave the policy-gradient term, but the
    entropy bonus and the critic's loss (through the trunk and embedding it shares with the policy) still
    move the policy on their states (docs/controller.md); with both weights 0 nothing moves."""
    _ctrl, states, _decisions, nexts = batch
    moved = {}
    for weights in ((0.0, 0.0), (0.05, 0.0), (0.0, 0.5)):
        ctrl = _controller(seed=8)
        before = ctrl.move_probabilities(states[0])
        decisions = ctrl.decide(states, np.random.default_rng(5))
        nexts = [d.move.apply(s, default_toolkit().moves) for s, d in zip(states, decisions)]
        for _ in range(3):
            ctrl.update(
                states,
                decisions,
                nexts,
                np.arange(4.0),
                gamma=0.0,
                entropy_weight=weights[0],
                value_weight=weights[1],
                advantages=np.zeros(4),
            )
        moved[weights] = float(np.abs(ctrl.move_probabilities(states[0]) - before).sum())
    assert moved[(0.0, 0.0)] < 1e-6 and moved[(0.05, 0.0)] > 1e-3 and moved[(0.0, 0.5)] > 1e-5
