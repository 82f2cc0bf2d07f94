"""`check_strategy`: the strategy contract (docs/plugin_hooks.md, `na_register_strategies`;
na_toolkit/search/strategy.py) as one call.

A registered strategy is a `Strategy` subclass with a name and a description whose options refuse a key they
do not know. Run for a few rounds against a small search (`StrategyCheckContext`: a seed network, the
toolkit's moves, a cheap deterministic score standing in for predictors and evaluations), its `ask(n)` gives a
list of `Candidate`s whose moves, replayed from the seed, build their network; every round proposes something
new, and no ask a network twice;
it draws every random number from `context.rng` (the global numpy and `random` states are left alone), so
two runs from the same seed propose the same networks in the same order, in this process and in a fresh one
whose hash seed differs (`search --resume` replays the strategy in a new process); and its `state_dict()`
survives a checkpoint's encoding and loads into a fresh instance.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import NAToolkitError
from ..ir.architecture import Architecture
from ..moves import Move
from ..search.strategy import Candidate, Score, Strategy
from ._common import (
    ConformanceWarning,
    expect,
    expect_unknown_option_refused,
    fail,
    listed,
    resolve,
    toolkit_or_default,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..moves import MoveType
    from ..toolkit import Toolkit


class StrategyCheckContext:
    """A small search for a strategy to run against: the seed network, the move types, `rng` from `seed`,
    the ground truth told so far, and `score`: a cheap deterministic stand-in for the predictors and the
    reward. Accuracy grows with the network's MACs relative to the seed's, plus a share drawn from its hash;
    reward = accuracy − 0.1 × relative size; a network over `size_budget` × the seed's size breaks a hard
    budget (reward −1, infeasible)."""

    def __init__(
        self, seed_arch: Architecture, move_types: Sequence[MoveType], seed: int = 0, size_budget: float = 1.5
    ):
        self.seed_arch = seed_arch
        self.move_types: Sequence[MoveType] = list(move_types)
        self.rng = np.random.default_rng(seed)
        self.size_budget = size_budget
        self._evaluated: dict[str, tuple[Candidate, Score]] = {}
        self.scored = 0

    @property
    def evaluated(self) -> dict[str, tuple[Candidate, Score]]:
        return self._evaluated

    def shared_embedding(self) -> None:
        """No neural predictor lends an embedding here: a controller builds its own."""
        return None

    def score_of(self, arch: Architecture, real: bool = False) -> Score:
        seed = self.seed_arch.cost
        size = arch.cost.model_size_bytes / max(seed.model_size_bytes, 1)
        luck = int(arch.hash[:6], 16) / 16**6  # a network's own share, as training's: not all is size
        accuracy = 0.5 + 0.3 * (1.0 - float(np.exp(-arch.cost.macs / max(seed.macs, 1)))) + 0.1 * luck
        metrics = {"accuracy": accuracy, "model_size_bytes": float(arch.cost.model_size_bytes)}
        if size > self.size_budget:
            hard = ("model_size_bytes",)
            return Score(-1.0, metrics, False, 0.0 if real else 0.01, real, hard, hard)
        return Score(accuracy - 0.1 * size, metrics, True, 0.0 if real else 0.01, real)

    def score(self, archs: Sequence[Architecture]) -> list[Score]:
        self.scored += len(archs)
        return [self.score_of(a) for a in archs]

    def evaluate(self, cand: Candidate) -> Score:
        """The "ground truth" of a candidate, stored as the loop stores an evaluation."""
        score = self.score_of(cand.arch, real=True)
        self._evaluated[cand.hash] = (cand, score)
        return score


@dataclass(frozen=True)
class StrategyResult:
    """What `check_strategy` found (every check passed)."""

    name: str
    #: the hashes each ask proposed, round by round (the same in both runs)
    proposed: tuple[tuple[str, ...], ...]
    #: networks evaluated (told back as ground truth), the seed included
    evaluated: int
    #: networks the strategy scored with `context.score`
    scored: int
    #: whether a fresh process (another hash seed) ran the same rounds and proposed the same (False: not run,
    #: `across_processes=False`, or skipped with a `ConformanceWarning` saying why)
    across_processes: bool = False


def _global_rng_state() -> bytes:
    return pickle.dumps((np.random.get_state(), random.getstate()))


def _run(
    cls: type[Strategy], name: str, context: StrategyCheckContext, options: Mapping[str, Any], rounds: int, n: int
) -> tuple[Strategy, list[tuple[str, ...]]]:
    where = f"strategy {name!r}"
    try:
        strat = cls(context, **dict(options))
    except NAToolkitError as e:
        fail(where, f"refused the options {dict(options)!r}: {e}")
    seed_cand = Candidate(context.seed_arch, (), None, "seed")
    strat.tell([(seed_cand, context.evaluate(seed_cand))])  # round 0: the seed, as the loop does
    proposed: list[tuple[str, ...]] = []
    for r in range(rounds):
        out = strat.ask(n)
        expect(isinstance(out, list), where, f"ask({n}) returned {type(out).__name__}, not a list of Candidate")
        for i, c in enumerate(out):
            at = f"{where} round {r} proposal {i}"
            expect(isinstance(c, Candidate), at, f"is a {type(c).__name__}, not a Candidate")
            expect(isinstance(c.arch, Architecture), at, f"arch is a {type(c.arch).__name__}, not an Architecture")
            expect(
                isinstance(c.moves, tuple) and all(isinstance(m, Move) for m in c.moves),
                at,
                "moves must be a tuple of Move (how the network was reached from the seed)",
            )
            _check_replay(c, context, at)
        proposed.append(tuple(c.hash for c in out))
        twice = sorted({c.hash for c in out if proposed[-1].count(c.hash) > 1})
        expect(
            not twice,
            f"{where} round {r}",
            f"proposes {', '.join(twice)} more than once in one ask: the loop evaluates each network once, so the "
            "other slots are wasted (a search then needs more rounds for its budget); propose distinct networks",
        )
        new = [c for c in out if c.hash not in context.evaluated]
        expect(
            bool(new),
            f"{where} round {r}",
            "proposes only networks already evaluated: a search stops after max_stalled_rounds such rounds; "
            "propose from what tell() gave (the evaluated networks), not the same ones again",
        )
        paid = {c.hash for c in new[:n]}  # the loop pays for n new ones; the rest are dropped
        results = []
        for c in out:
            if c.hash in paid:
                results.append((c, context.evaluate(c)))
                paid.discard(c.hash)
            elif c.hash in context.evaluated:
                results.append((c, context.evaluated[c.hash][1]))
        strat.tell(results)
    return strat, proposed


def _check_replay(c: Candidate, context: StrategyCheckContext, at: str) -> None:
    arch = context.seed_arch
    types = {m.name: m for m in context.move_types}
    for k, move in enumerate(c.moves):
        expect(move.name in types, at, f"move {k} {move.name!r} is not one of the search's moves {sorted(types)}")
        try:
            arch = types[move.name].apply(arch, **move.params)
        except NAToolkitError as e:
            fail(at, f"its moves do not replay from the seed: move {k} ({move.name} {move.params}) fails: {e}")
    expect(
        arch.hash == c.arch.hash,
        at,
        f"its {len(c.moves)} moves, replayed from the seed, build {arch.hash[:12]}, not its network "
        f"{c.arch.hash[:12]} (Candidate.moves is the path from the seed, start's moves included)",
    )


def check_strategy(
    strategy: type[Strategy] | str,
    toolkit: Toolkit | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    seed_network: str | Architecture = "simple-cnn",
    moves: Sequence[str] | None = None,
    rounds: int = 3,
    n: int = 4,
    seed: int = 0,
    across_processes: bool = True,
) -> StrategyResult:
    """Check a strategy class (or its registered name) against the strategy contract; AssertionError
    (`ConformanceError`) naming what broke. Runs `rounds` rounds of ask(n) / tell twice from `seed` on
    `seed_network` with `moves` (default: every move of the toolkit), then (`across_processes`) once more in
    a fresh Python process with another PYTHONHASHSEED, which must propose the same."""
    tk = toolkit_or_default(toolkit)
    name, cls = resolve(tk.strategies, strategy, "strategy")
    where = f"strategy {name!r}"
    expect(isinstance(cls, type) and issubclass(cls, Strategy), where, "is not a subclass of Strategy")
    own = getattr(cls, "name", None)
    expect(own == name and name, where, f"the class's name {own!r} is not its registered name {name!r}")
    expect(bool(getattr(cls, "description", "")), where, "has no description (shown by na-toolkit plugins)")
    options = dict(options or {})
    expect_unknown_option_refused(cls, options, where)
    seed_arch = tk.seed(seed_network) if isinstance(seed_network, str) else seed_network
    move_types = [tk.moves.get(m) for m in (listed(moves, "moves") if moves is not None else tk.moves.names())]
    before = _global_rng_state()
    ctx1 = StrategyCheckContext(seed_arch, move_types, seed)
    strat, first = _run(cls, name, ctx1, options, rounds, n)
    expect(
        _global_rng_state() == before,
        where,
        "changed the global numpy or random RNG state: draw every random number from context.rng",
    )
    expect(len(ctx1.evaluated) > 1, where, f"proposed no new network in {rounds} rounds (the search would stall)")
    ctx2 = StrategyCheckContext(seed_arch, move_types, seed)
    _again, second = _run(cls, name, ctx2, options, rounds, n)
    for r, (a, b) in enumerate(zip(first, second)):
        expect(
            a == b,
            where,
            f"two runs from seed {seed} differ at round {r} ({len(a)} and {len(b)} proposals): draw every random "
            "number from context.rng, and iterate in a fixed order",
        )
    _check_state(cls, name, strat, seed_arch, move_types, seed, options)
    other = False
    if across_processes:
        run = _FreshRun(tk.selection.to_json(), _strategy_ref(strategy, cls), _seed_ref(seed_network), options)
        other = _check_fresh_process(where, run, [m.name for m in move_types], rounds, n, seed, first, seed_arch)
    return StrategyResult(name, tuple(first), len(ctx1.evaluated), ctx1.scored, other)


def _check_state(
    cls: type[Strategy],
    name: str,
    strat: Strategy,
    seed_arch: Architecture,
    move_types: Sequence[MoveType],
    seed: int,
    options: Mapping[str, Any],
) -> None:
    from ..store.codec import decode_state, encode_state

    where = f"strategy {name!r}"
    state = strat.state_dict()
    expect(isinstance(state, dict), where, f"state_dict() returned {type(state).__name__}, not a dict")
    try:
        restored = decode_state(*encode_state(state))
    except (TypeError, ValueError, NAToolkitError) as e:
        fail(where, f"state_dict() does not survive a checkpoint (JSON, or torch tensors): {e}")
    fresh = cls(StrategyCheckContext(seed_arch, move_types, seed), **dict(options))
    try:
        fresh.load_state_dict(restored)
    except (KeyError, TypeError, ValueError, NAToolkitError) as e:
        fail(where, f"load_state_dict() of its own checkpointed state_dict() fails: {type(e).__name__}: {e}")


# ---- the same rounds in a fresh process ---------------------------------------------------------------------
#: how long the fresh process may take (its imports, the toolkit, the rounds) before the check fails
FRESH_PROCESS_TIMEOUT_S = 300.0
_FRESH_PROGRAM = "from na_toolkit.testing.strategies import fresh_process_main; fresh_process_main()"


@dataclass(frozen=True)
class _FreshRun:
    """What a fresh process rebuilds the run from (all JSON): the toolkit's plugin selection, the strategy
    (("name", registered name) or ("class", "module:qualname") for a class given as itself), the seed
    network (a name or an architecture's JSON) and the options."""

    selection: dict[str, Any]
    strategy: tuple[str, str]
    seed_network: str | dict[str, Any]
    options: dict[str, Any]


def _strategy_ref(strategy: type[Strategy] | str, cls: type[Strategy]) -> tuple[str, str]:
    return ("name", strategy) if isinstance(strategy, str) else ("class", f"{cls.__module__}:{cls.__qualname__}")


def _seed_ref(seed_network: str | Architecture) -> str | dict[str, Any]:
    return seed_network if isinstance(seed_network, str) else seed_network.to_json()


def _not_importable(run: _FreshRun) -> str | None:
    """Why another process cannot rebuild the run (None: it can, as far as this process can tell)."""
    if not run.selection.get("portable", True):
        return "the toolkit was built with a plugin object that is not a module (extra_plugins=(an object,))"
    kind, ref = run.strategy
    module_name, _, qualname = ref.partition(":")
    for name in [*run.selection.get("extra_modules", ()), *([module_name] if kind == "class" else [])]:
        module = sys.modules.get(name)
        if name == "__main__" or module is None or getattr(module, "__spec__", None) is None:
            return f"the plugin module {name!r} was not imported by name (made in code, or run as a script)"
    if kind == "class" and "<locals>" in qualname:
        return f"the class {qualname} cannot be imported by name from {module_name!r} (made in a function or a script)"
    try:
        json.dumps(run.options)
    except (TypeError, ValueError) as e:
        return f"its options are not JSON ({e})"
    return None


def _other_hash_seed() -> str:
    own = os.environ.get("PYTHONHASHSEED", "")
    return str((int(own) + 1) % 2**32) if own.isdigit() else "1"


def _check_fresh_process(
    where: str,
    run: _FreshRun,
    moves: list[str],
    rounds: int,
    n: int,
    seed: int,
    here: list[tuple[str, ...]],
    seed_arch: Architecture,
) -> bool:
    """Run the same rounds in a fresh Python process with another PYTHONHASHSEED and fail unless it proposes
    what this process did; False (with a `ConformanceWarning`) when that process cannot rebuild the strategy."""
    reason = _not_importable(run)
    hash_seed = _other_hash_seed()
    doc: dict[str, Any] = {}
    if reason is None:
        with tempfile.TemporaryDirectory(prefix="na-check-strategy-") as tmp:
            out = os.path.join(tmp, "proposed.json")
            request = {**run.__dict__, "moves": moves, "rounds": rounds, "n": n, "seed": seed, "out": out}
            path = [os.getcwd() if p == "" else p for p in sys.path]
            env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": os.pathsep.join(path)}
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", _FRESH_PROGRAM],
                    input=json.dumps(request),
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=FRESH_PROCESS_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired:
                fail(where, f"a fresh process running the same rounds did not end in {FRESH_PROCESS_TIMEOUT_S:g} s")
            if proc.returncode != 0 or not os.path.exists(out):
                tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                fail(where, f"a fresh process (PYTHONHASHSEED={hash_seed}) running the same rounds failed: {tail}")
            with open(out, encoding="utf-8") as f:
                doc = json.load(f)
        reason = doc.get("unimportable")
    if reason is not None:
        warnings.warn(
            f"{where}: not checked in a fresh process: {reason}. A search resumed in a new process replays the "
            "strategy there: register it from a module importable by name (an installed plugin, or "
            "load_toolkit(extra_plugins=(my_plugin,)) with my_plugin on sys.path) to have it checked, or "
            "pass across_processes=False",
            ConformanceWarning,
            stacklevel=3,
        )
        return False
    if "failed" in doc:
        fail(where, f"in a fresh process (PYTHONHASHSEED={hash_seed}): {doc['failed']}")
    expect(
        doc["seed_hash"] == seed_arch.hash,
        where,
        f"a fresh process rebuilt the seed network as {doc['seed_hash'][:12]}, not {seed_arch.hash[:12]}",
    )
    there = [tuple(r) for r in doc["proposed"]]
    for r, (a, b) in enumerate(zip(here, there)):
        if a == b:
            continue
        i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        mine, theirs = (p[i][:12] if i < len(p) else "nothing" for p in (a, b))
        fail(
            where,
            f"a fresh process (PYTHONHASHSEED={hash_seed}) proposes otherwise from seed {seed}: round {r} proposal "
            f"{i} is {theirs} there, {mine} here ({len(b)} and {len(a)} proposals). Its proposals depend on "
            "something that differs between processes: iterating over a set (or a dict built from one), "
            "hash() of a string, id(), the time, or an RNG other than context.rng. Sort what you iterate over "
            "(sorted(hashes)) and draw every random number from context.rng: `search --resume` replays the "
            "strategy in a new process, and it would part from the stored run",
        )
    return True


class _Unimportable(Exception):
    pass


def fresh_process_main() -> None:
    """The fresh process of `check_strategy`: reads the request (JSON) from stdin, runs the rounds and writes
    {"proposed", "seed_hash"}, {"failed": message} or {"unimportable": why} to the request's `out`."""
    request = json.loads(sys.stdin.read())
    doc: dict[str, Any]
    try:
        doc = _fresh_proposals(request)
    except _Unimportable as e:
        doc = {"unimportable": str(e)}
    except AssertionError as e:  # ConformanceError, raised here rather than in the first process
        doc = {"failed": str(e)}
    with open(request["out"], "w", encoding="utf-8") as f:
        json.dump(doc, f)


def _fresh_proposals(request: dict[str, Any]) -> dict[str, Any]:
    import importlib

    from ..plugins import load_toolkit_from_selection
    from ..toolkit import PluginSelection

    kind, ref = request["strategy"]
    try:
        tk = load_toolkit_from_selection(PluginSelection.from_json(request["selection"]))
        if kind == "class":
            module_name, _, qualname = ref.partition(":")
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        else:
            obj = tk.strategies.get(ref)
    except (ImportError, AttributeError) as e:
        raise _Unimportable(f"another process cannot import it ({type(e).__name__}: {e})") from None
    name = ref if kind == "name" else str(obj.name)
    seed_doc = request["seed_network"]
    seed_arch = tk.seed(seed_doc) if isinstance(seed_doc, str) else Architecture.from_json(seed_doc, tk.layer_types)
    ctx = StrategyCheckContext(seed_arch, [tk.moves.get(m) for m in request["moves"]], request["seed"])
    _strat, proposed = _run(obj, name, ctx, request["options"], request["rounds"], request["n"])
    return {"proposed": [list(p) for p in proposed], "seed_hash": seed_arch.hash}
