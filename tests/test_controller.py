"""The Neural Architect controller: masks, plugin moves, learning, persistence and determinism.

The controller runs for real (torch, the registered moves, real architectures); the only stand-in is the
search context, whose `score` is a toy reward so that what the controller should learn is known.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import na_toolkit
from conftest import default_toolkit
from na_toolkit.controller.action_space import ActionSpace
from na_toolkit.controller.policy import Controller
from na_toolkit.embedding import ArchitectureTokenizer
from na_toolkit.errors import ConfigError
from na_toolkit.moves import MoveType, ParamSpec
from na_toolkit.plugins import load_toolkit
from na_toolkit.search.neural_architect import NeuralArchitectStrategy
from na_toolkit.search.strategy import Candidate, Score
from na_toolkit.torchutil import torch_threads

BUILTIN_MOVES = ("insert_conv", "insert_add", "scale", "remove")
SMALL = {"episodes": 6, "updates": 2, "episode_length": 2}


def _params_reward(arch) -> float:
    """Toy objective: networks near 10^5 parameters are best."""
    return -abs(float(np.log10(arch.cost.params)) - 5.0)


class ToyContext:
    """A search context with a toy predicted reward; `evaluated` is filled by the test."""

    def __init__(self, seed_arch, move_types, seed: int = 0, reward=_params_reward):
        self.seed_arch = seed_arch
        self.move_types = list(move_types)
        self.rng = np.random.default_rng(seed)
        self.reward = reward
        self.scored = 0
        self._evaluated: dict = {}

    def score(self, archs):
        self.scored += len(archs)
        return [Score(self.reward(a), {"accuracy": 0.0}) for a in archs]

    @property
    def evaluated(self):
        return dict(self._evaluated)

    def pay_for(self, candidates):
        for c in candidates:
            self._evaluated[c.hash] = (c, Score(self.reward(c.arch), {"accuracy": 0.0}, real=True))


def _simple_cnn_context(seed: int = 0, **kw) -> ToyContext:
    tk = default_toolkit()
    return ToyContext(tk.seed("simple-cnn"), [tk.moves.get(n) for n in BUILTIN_MOVES], seed, **kw)


def _controller(ops, seed: int = 0, **kw) -> Controller:
    tokenizer = ArchitectureTokenizer.for_registry(default_toolkit().layer_types)
    return Controller(tokenizer, ActionSpace.from_move_types(ops), seed, **kw)


def test_sampled_moves_are_always_valid():
    ctx = _simple_cnn_context()
    ctrl = _controller(ctx.move_types, train_embedding=True)
    archs = [ctx.seed_arch]
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(4):  # walk a few steps so the masks are exercised on edited networks too
        nxt = []
        for arch, d in zip(archs, ctrl.decide(archs * 1, rng)):
            assert d is not None
            op = ctx.move_types[d.op]
            # every chosen value was admitted by the mask in force, and that mask is the operation's own
            chosen = {}
            for k, p in enumerate(op.params()):
                mask = op.mask(arch, p.name, dict(chosen))
                assert np.array_equal(mask, d.masks[k]) and mask[d.values[k]]
                chosen[p.name] = p.value_at(d.values[k])
            assert chosen == d.move.params and d.move.name == op.name
            op.check(arch, d.move.params)
            nxt.append(op.apply(arch, **d.move.params))
            checked += 1
        archs = nxt + [ctx.seed_arch] * 3
    assert checked >= 4 + 4 * 3


def test_masked_choices_are_never_sampled_even_when_preferred():
    ctx = _simple_cnn_context()
    ctrl = _controller(ctx.move_types)
    with torch.no_grad():  # make the policy love `remove` and position 0, both forbidden on the seed below
        ctrl.net.move_head.bias[:] = torch.tensor([0.0, 0.0, 0.0, 50.0])
    remove = ctx.move_types[3]
    seed = ctx.seed_arch
    allowed = remove.mask(seed, "position", {})
    decisions = ctrl.decide([seed] * 40, np.random.default_rng(0))
    # the loved move is still chosen where it applies, and then only at its allowed positions
    assert len(decisions) == 40 and any(d is not None and d.op == 3 for d in decisions)
    for d in decisions:
        assert d is not None
        if d.op == 3:
            assert allowed[d.values[0]]
        assert ctx.move_types[d.op].is_applicable(seed)


class Widen(MoveType):
    """A plugin move the controller has never seen: scale the width of one conv by a factor."""

    name = "toy_widen"
    description = "multiply a conv's filters by a factor (test plugin)"
    FACTORS = (2, 3)

    def params(self):
        return (ParamSpec.position("position"), ParamSpec("factor", self.FACTORS))

    def mask(self, arch, param, chosen):
        if param == "position":
            m = np.zeros(128, dtype=bool)
            for i, node in enumerate(arch.nodes[:128]):
                m[i] = node.type == "conv2d" and arch.attrs(node.id).get("groups", 1) == 1
            return m
        return np.ones(len(self.FACTORS), dtype=bool)

    def apply(self, arch, **params):
        self.check(arch, params)
        node = arch.nodes[params["position"]]
        filters = arch.attrs(node.id)["filters"] * params["factor"]
        nodes = [n.replace(attrs=n.attrs.replace(filters=filters)) if n.id == node.id else n for n in arch.nodes]
        return arch.with_nodes(nodes)


class WidenPlugin:
    __name__ = "toy_widen_plugin"

    @staticmethod
    @na_toolkit.hookimpl
    def na_register_moves(registry):
        registry.add(Widen())


def test_a_plugin_move_gets_heads_without_controller_code():
    tk = load_toolkit(extra_plugins=(WidenPlugin(),))
    assert "toy_widen" in tk.moves
    ops = [tk.moves.get(n) for n in ("toy_widen", "scale")]
    space = ActionSpace.from_move_types(ops)
    ctrl = Controller(ArchitectureTokenizer.for_registry(tk.layer_types), space, seed=0)
    assert "0_0" in ctrl.net.pointer_v and "0_1" in ctrl.net.choice_head  # pointer for position, categorical for factor
    assert ctrl.net.choice_head["0_1"].out_features == 2
    seed = tk.seed("simple-cnn")
    decisions = ctrl.decide([seed] * 30, np.random.default_rng(0))
    widened = [d for d in decisions if d.move.name == "toy_widen"]
    assert widened, "the plugin move was never sampled"
    for d in widened:
        child = ops[0].apply(seed, **d.move.params)
        assert seed.nodes[d.move.params["position"]].type == "conv2d"
        assert child.cost.params > seed.cost.params


def test_actor_critic_moves_the_policy_towards_reward():
    ctx = _simple_cnn_context()
    ctrl = _controller(ctx.move_types, seed=3, lr=1e-2)
    seed = ctx.seed_arch
    target = 1  # reward only insert_add
    before = ctrl.move_probabilities(seed)[target]
    rng = np.random.default_rng(0)
    for _ in range(25):
        states = [seed] * 16
        decisions = ctrl.decide(states, rng)
        rewards = np.array([1.0 if d.op == target else 0.0 for d in decisions])
        ctrl.update(states, decisions, states, rewards, gamma=0.0, entropy_weight=0.0)
    after = ctrl.move_probabilities(seed)[target]
    assert after > max(0.6, before + 0.3), (before, after)


def test_actor_critic_learns_a_parameter_head():
    ctx = _simple_cnn_context()
    scale = next(op for op in ctx.move_types if op.name == "scale")
    ctrl = _controller([scale], seed=0, lr=2e-2)
    seed = ctx.seed_arch
    rng = np.random.default_rng(0)

    def attribute_share(decisions, value):
        return np.mean([d.move.params["attribute"] == value for d in decisions])

    first = ctrl.decide([seed] * 64, rng)
    wanted = first[0].move.params["attribute"]
    base = attribute_share(first, wanted)
    for _ in range(25):
        states = [seed] * 16
        decisions = ctrl.decide(states, rng)
        rewards = np.array([1.0 if d.move.params["attribute"] == wanted else 0.0 for d in decisions])
        ctrl.update(states, decisions, states, rewards, gamma=0.0, entropy_weight=0.0)
    assert attribute_share(ctrl.decide([seed] * 64, rng), wanted) > max(0.8, base + 0.2)


def test_strategy_proposes_valid_unevaluated_candidates_and_improves():
    ctx = _simple_cnn_context()
    strat = NeuralArchitectStrategy(ctx, **SMALL)
    seed_score = _params_reward(ctx.seed_arch)
    best = []
    for _ in range(3):
        cands = strat.ask(3)
        assert len(cands) >= 3 and len({c.hash for c in cands}) == len(cands)
        for c in cands:
            assert c.hash not in ctx.evaluated and c.hash != ctx.seed_arch.hash
            # the recorded moves rebuild the candidate from the seed
            arch = ctx.seed_arch
            for m in c.moves:
                arch = m.apply(arch, default_toolkit().moves)
            assert arch.hash == c.hash
        ranked = [_params_reward(c.arch) for c in cands]
        assert ranked == sorted(ranked, reverse=True)  # best first by the context's score
        ctx.pay_for(cands[:3])
        best.append(max(s.reward for _c, s in ctx.evaluated.values()))
    assert best[-1] > seed_score
    assert ctx.scored > 3 * 3  # the controller scored many more networks than were evaluated


def test_state_dict_round_trip_gives_identical_next_proposals():
    ctx = _simple_cnn_context(seed=5)
    a = NeuralArchitectStrategy(ctx, **SMALL)
    ctx.pay_for(a.ask(2)[:2])
    state = copy.deepcopy(a.state_dict())
    rng_state = copy.deepcopy(ctx.rng.bit_generator.state)
    nxt_a = [c.hash for c in a.ask(2)]

    ctx.rng.bit_generator.state = rng_state
    b = NeuralArchitectStrategy(ctx, **SMALL)
    b.load_state_dict(state)
    ctx.rng.bit_generator.state = rng_state
    nxt_b = [c.hash for c in b.ask(2)]
    assert nxt_a == nxt_b
    for k, v in a.controller.net.state_dict().items():
        assert torch.equal(v, b.controller.net.state_dict()[k])


def test_same_seed_same_proposals_other_seed_other_proposals():
    runs = []
    for seed in (7, 7, 8):
        ctx = _simple_cnn_context(seed=seed)
        strat = NeuralArchitectStrategy(ctx, **SMALL)
        hashes = []
        for _ in range(2):
            cands = strat.ask(2)
            hashes += [c.hash for c in cands]
            ctx.pay_for(cands[:2])
        runs.append(hashes)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"episode_length": 0}, "episode_length"),
        ({"gamma": 1.5}, "gamma"),
        ({"train_embedding": "yes"}, "train_embedding"),
        ({"proposals": 2.5}, "proposals"),
        ({"risk_seeking": -0.1}, "risk_seeking"),
        ({"risk_seeking": 0.1}, "risk_seeking apply under a scoring budget"),
        ({"walk_share": 0.5, "reward_ranks": True}, "reward_ranks, walk_share apply under a scoring budget"),
        ({"walk_share": 0.5, "reward_ranks": False}, "strategy.options: walk_share apply under a scoring budget"),
        ({"risk_seeking": 1.5}, "risk_seeking"),
        ({"learn_from_evaluations": True}, "learn_from_evaluations apply under a scoring budget"),
    ],
)
def test_bad_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        NeuralArchitectStrategy(_simple_cnn_context(), **options)


def test_default_updates_and_walks_depend_on_the_scoring_budget_and_an_explicit_value_wins():
    # measured in docs/controller.md: unlimited scoring needs fewer updates (the walks find the cells), a
    # scoring budget learns more with 6
    ctx = _simple_cnn_context()
    plain = NeuralArchitectStrategy(ctx, episodes=5)
    assert (plain.updates, plain.explore_episodes) == (4, 15)
    assert NeuralArchitectStrategy(ctx, scoring_budget=10).updates == 6
    assert NeuralArchitectStrategy(ctx, scoring_budget=10, updates=3).updates == 3
    with pytest.raises(ConfigError, match="updates"):
        NeuralArchitectStrategy(ctx, updates=0)


def test_the_entropy_weight_follows_the_entropy_target_and_resumes():
    """With an entropy_target the entropy weight adapts: each update records the weight it used, the next one is
    x1.5 or /1.5 by whether the entropy fell below the target share of the first update's, and a restored
    strategy continues from the adapted weight; without one (the default), or with 0, it stays fixed."""
    ctx = _simple_cnn_context(seed=3)
    strat = NeuralArchitectStrategy(ctx, scoring_budget=10, entropy_weight=0.05, entropy_target=0.9, **SMALL)
    for _ in range(3):
        ctx.pay_for(strat.ask(2)[:2])
    used = [e for e in strat.history if "entropy" in e]
    assert len(used) >= 3 and used[0]["entropy_weight"] == 0.05
    first = used[0]["entropy"]
    for before, after in zip(used, used[1:]):
        step = 1.5 if before["entropy"] < 0.9 * first else 1 / 1.5
        assert after["entropy_weight"] == pytest.approx(min(max(before["entropy_weight"] * step, 1e-3), 2.0))
    state = copy.deepcopy(strat.state_dict())
    again = NeuralArchitectStrategy(ctx, scoring_budget=10, entropy_weight=0.05, entropy_target=0.9, **SMALL)
    again.load_state_dict(state)
    assert again.entropy_weight == strat.entropy_weight != 0.05
    for fixed in (
        NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL),
        NeuralArchitectStrategy(ctx, entropy_target=0, **SMALL),
    ):
        assert fixed.entropy_target is None
        ctx.pay_for(fixed.ask(2)[:2])
        assert fixed.entropy_weight == 0.05 and all(
            e["entropy_weight"] == 0.05 for e in fixed.history if "entropy" in e
        )


def test_a_saved_controller_refuses_other_moves():
    ctx = _simple_cnn_context()
    ctrl = _controller(ctx.move_types)
    other = _controller(ctx.move_types[:2])
    with pytest.raises(ConfigError, match="other moves"):
        other.load_state_dict(ctrl.state_dict())


def test_optimizer_is_torch_adam_with_clipping_and_its_state_round_trips():
    ctx = _simple_cnn_context()
    ctrl = _controller(ctx.move_types, train_embedding=True)
    assert type(ctrl.optimizer) is torch.optim.Adam
    seed = ctx.seed_arch
    rng = np.random.default_rng(0)
    decisions = ctrl.decide([seed] * 8, rng)
    # rewards far apart: without clipping the first step's gradient norm is well above 1
    ctrl.update([seed] * 8, decisions, [seed] * 8, np.linspace(-100.0, 100.0, 8))
    state = ctrl.state_dict()
    assert state["optimizer"]["state"], "Adam kept no moments"
    other = _controller(ctx.move_types, train_embedding=True)
    other.load_state_dict(state)
    for k, v in ctrl.optimizer.state_dict()["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(v[name], other.optimizer.state_dict()["state"][k][name])
    # the state is a copy: a further update of the first leaves the saved moments alone
    saved = copy.deepcopy(state)
    ctrl.update([seed] * 8, ctrl.decide([seed] * 8, rng), [seed] * 8, np.linspace(-1.0, 1.0, 8))
    for k, v in saved["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], state["optimizer"]["state"][k]["exp_avg"])
    # a controller saved by the hand-written Adam of older versions is refused with a message
    old = dict(state, optimizer={"t": 3, "m": [], "v": []})
    with pytest.raises(ConfigError, match="older na_toolkit"):
        other.load_state_dict(old)


def test_the_embedding_is_its_own_layer_below_predictors_and_controller():
    import subprocess
    import sys

    code = (
        "import sys, na_toolkit.predictors.neural, na_toolkit.predictors.neural_torch, na_toolkit.embedding; "
        "print(sorted(m for m in sys.modules if m.startswith('na_toolkit.controller')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_the_embedding_trains_at_any_size_and_an_update_scales():
    """No size threshold: on a 120-node network the update moves the embedding's tables and LSTMs (through
    the truncated network LSTM), the strategy trains it by default, and the timing helper measures real
    updates of the default batch."""
    from na_toolkit.controller.timing import EPISODE_LENGTH, EPISODES, synthetic_network, update_batch, update_seconds

    tk = default_toolkit()
    ops = [tk.moves.get(n) for n in BUILTIN_MOVES]
    arch = synthetic_network(90, tk.layer_types)
    assert len(arch.nodes) == 90
    ctrl = _controller(ops)
    assert ctrl.train_embedding and ctrl.grad_steps is not None and ctrl.grad_steps < 80
    with torch_threads(1):  # the tests share 2 busy cores: intra-op threads only wait for each other there
        batch = update_batch(ctrl, arch, ops, np.random.default_rng(0))
        assert len(batch[0]) == EPISODES * EPISODE_LENGTH
        before = {k: v.clone() for k, v in ctrl.net.embedding.state_dict().items()}
        ctrl.update(*batch)
    after = ctrl.net.embedding.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert "tables.generic:channels.weight" in moved and "tables.conv2d:kernel.weight" in moved
    assert any(k.startswith("network_lstm.") for k in moved) and any(k.startswith("layer_lstm.") for k in moved)
    assert NeuralArchitectStrategy(_simple_cnn_context(), **SMALL).train_embedding
    assert 0 < update_seconds(40, repeats=1, toolkit=tk, threads=1) < 30


def test_a_controller_saved_with_another_vocabulary_is_refused_with_a_message():
    ctx = _simple_cnn_context()
    ctrl = _controller(ctx.move_types)
    state = ctrl.state_dict()
    net = dict(state["net"])
    # the hashed embedding of older versions: a type table and one 1,024-row feature table
    for k in [k for k in net if k.startswith("embedding.tables.")]:
        del net[k]
    net["embedding.type_table.weight"] = torch.zeros(19, 16)
    net["embedding.feature_table.weight"] = torch.zeros(1024, 16)
    with pytest.raises(ConfigError, match="do not fit this one"):
        _controller(ctx.move_types).load_state_dict(dict(state, net=net))


def test_risk_seeking_learns_only_from_the_best_share_of_a_batch():
    """risk_seeking = ε: the episodes above the batch's (1 − ε) quantile get how far they clear it (in units of
    the batch's spread), the others 0; off, or a batch without spread, gives nothing to learn from."""
    from na_toolkit.search.neural_architect_budget import _risk_advantages

    values = np.linspace(-0.5, 0.5, 11)
    adv = _risk_advantages(values, 0.2)
    edge = np.quantile(values, 0.8)
    assert np.all(adv[values <= edge] == 0.0) and np.all(adv[values > edge] > 0.0)
    assert adv[-1] == pytest.approx((0.5 - edge) / values.std())
    assert not _risk_advantages(values, None).any() and not _risk_advantages(np.zeros(5), 0.2).any()


def test_a_risk_seeking_search_learns_from_its_best_episodes_only():
    """Under a scoring budget, risk_seeking (default 0.1; null or 0: off) trains the policy on other
    advantages than the critic's: the same search (same seed) makes its updates, and the proposals part ways."""
    runs = []
    for options in ({}, {"risk_seeking": 0.25}, {"risk_seeking": 0}, {"risk_seeking": None}):
        ctx = _simple_cnn_context(seed=4)
        strat = NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL, **options)
        hashes = []
        for _ in range(3):
            cands = strat.ask(2)
            hashes += [c.hash for c in cands]
            ctx.pay_for(cands[:2])
        assert strat.controller.updates >= 3
        runs.append(hashes)
    assert runs[0] != runs[1] and runs[0] != runs[2] and runs[2] == runs[3]


def test_learning_from_evaluations_adds_an_update_per_told_round_of_policy_proposals():
    """learn_from_evaluations (on by default under a scoring budget): each tell holding real results of
    networks the policy's episodes proposed is one more update (recorded with the mean real rank its episodes
    got); a tell of others' results is not."""
    counts = []
    for options in ({"learn_from_evaluations": False}, {}):
        ctx = _simple_cnn_context(seed=4)
        strat = NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL, **options)
        for _ in range(3):
            cands = strat.ask(2)
            ctx.pay_for(cands[:2])
            strat.tell([(c, ctx.evaluated[c.hash][1]) for c in cands[:2]])
        counts.append((strat.controller.updates, [e for e in strat.history if "real_rank_mean" in e]))
    (plain, none), (learning, real) = counts
    assert none == [] and real, "no update on real results"
    assert learning == plain + len(real)
    for e in real:
        assert 1 <= e["evaluated"] <= 2 and -0.5 <= e["real_rank_mean"] <= 0.5
    # told one by one (the async schedule): each result of the ask is learned from, once
    ctx = _simple_cnn_context(seed=4)
    strat = NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL)
    cands = [c for c in strat.ask(2) if c.hash in strat._proposed_runs][:2]
    assert len(cands) == 2
    ctx.pay_for(cands)
    before = strat.controller.updates
    for c in cands + cands:
        strat.tell([(c, ctx.evaluated[c.hash][1])])
    assert strat.controller.updates == before + 2
    # a later ask while results are in flight (async: slots refilled one by one) keeps the earlier
    # proposals waiting: every result is learned from when it comes, whichever ask it came from
    ctx = _simple_cnn_context(seed=4)
    strat = NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL)
    first = [c for c in strat.ask(1) if c.hash in strat._proposed_runs][:1]
    second = [c for c in strat.ask(1) if c.hash in strat._proposed_runs and c.hash != first[0].hash][:1]
    assert first and second and first[0].hash in strat._proposed_runs
    ctx.pay_for(first + second)
    before = strat.controller.updates
    for c in first + second:
        strat.tell([(c, ctx.evaluated[c.hash][1])])
    assert strat.controller.updates == before + 2 and not {c.hash for c in first + second} & set(strat._proposed_runs)
    # results of networks the policy did not propose teach it nothing
    ctx = _simple_cnn_context(seed=4)
    strat = NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL)
    strat.ask(2)
    updates = strat.controller.updates
    seed = Candidate(ctx.seed_arch, (), None, "seed")
    ctx.pay_for([seed])
    strat.tell([(seed, ctx.evaluated[seed.hash][1])])
    assert strat.controller.updates == updates


def test_given_advantages_replace_the_critics_and_zero_moves_nothing_but_entropy():
    """Controller.update(advantages=...): the actor learns from them (a zero advantage leaves the move
    probabilities where they were, with no entropy bonus), a positive one raises its move's probability."""
    ctx = _simple_cnn_context()
    seed = ctx.seed_arch
    rng = np.random.default_rng(0)
    ctrl = _controller(ctx.move_types, seed=3, lr=1e-2)
    before = ctrl.move_probabilities(seed)
    states = [seed] * 8
    decisions = ctrl.decide(states, rng)
    ctrl.update(
        states,
        decisions,
        states,
        np.linspace(0, 1, 8),
        gamma=0.0,
        entropy_weight=0.0,
        value_weight=0.0,
        advantages=np.zeros(8),
    )
    assert np.allclose(ctrl.move_probabilities(seed), before, atol=1e-6)
    target = decisions[0].op
    for _ in range(15):
        decisions = ctrl.decide(states, rng)
        adv = np.array([1.0 if d.op == target else 0.0 for d in decisions])
        ctrl.update(states, decisions, states, np.zeros(8), gamma=0.0, entropy_weight=0.0, advantages=adv)
    assert ctrl.move_probabilities(seed)[target] > before[target] + 0.2


def test_a_real_result_told_alone_is_learned_from_by_its_rank_among_every_real_result():
    """learn_from_evaluations on the async schedule: a result told alone is an update of one episode, whose
    returns (its rank, credited to each move) all agree. Standardised within that batch they were 0, so the
    critic's target was 0 whatever the result and the policy learned nothing of it; the rank is standardised
    against every real result instead (ranks uniform on [-0.5, 0.5]: times sqrt(12)), so a good result and a
    bad one teach the critic and the policy opposite things (docs/controller.md)."""
    ctx = _simple_cnn_context(seed=4)
    strat = NeuralArchitectStrategy(ctx, scoring_budget=10, **SMALL)
    cands = [c for c in strat.ask(2) if c.hash in strat._proposed_runs][:2]
    ctx.pay_for(cands)
    ctrl = strat.controller
    states = [a for a, _d, _c in strat._proposed_runs[cands[0].hash].steps]
    with torch.no_grad():
        v = ctrl.net.value_head(ctrl.net.trunk(torch.stack([e[0] for e in ctrl.embed(states)]))).squeeze(-1)
    strat.tell([(cands[0], ctx.evaluated[cands[0].hash][1])])
    entry = strat.history[-1]
    rank = entry["real_rank_mean"]
    assert entry["evaluated"] == 1 and rank != 0.0
    target = rank * math.sqrt(12.0)
    assert entry["value_loss"] == pytest.approx(float(((target - v) ** 2).mean()), rel=1e-4)
    assert entry["value_loss"] != pytest.approx(float((v**2).mean()), rel=1e-3)  # what a 0 target gave


def test_an_update_standardises_its_rewards_unless_told_they_are_standard_already():
    ctx = _simple_cnn_context(seed=5)
    strat = NeuralArchitectStrategy(ctx, **SMALL)
    strat.ask(2)
    ctrl = strat.controller
    seed = ctx.seed_arch
    d = ctrl.decide([seed], np.random.default_rng(0))[0]
    states = [seed, seed]
    snapshot = copy.deepcopy(ctrl.net.state_dict()), copy.deepcopy(ctrl.optimizer.state_dict())

    def value_loss(rewards, **kw):
        ctrl.net.load_state_dict(snapshot[0])
        ctrl.optimizer.load_state_dict(snapshot[1])
        info = ctrl.update(states, [d, d], states, np.array(rewards), gamma=0.0, entropy_weight=0.0, **kw)
        return info["value_loss"]

    # two equal rewards standardise to 0 whatever their value; not standardised, their value is the target
    assert value_loss([2.0, 2.0]) == pytest.approx(value_loss([-2.0, -2.0]), rel=1e-6)
    assert value_loss([2.0, 2.0], normalise=False) != pytest.approx(value_loss([-2.0, -2.0], normalise=False))
