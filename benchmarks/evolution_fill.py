"""`evolution` before/after its initial population came from `selection.fill_with_walks`, side by side in one
`na-toolkit bench nb201-search` run: the toolkit gets one more strategy, `evolution-own-walks`, which is
`evolution` with the initial-population loop it had before (per candidate up to `tries` walks from the seed;
after `tries` repeats the last one is proposed anyway). Same options as `evolution` in the benchmark
(max_moves 12), same cheap predictor (neither ranks its proposals). Everything else is the CLI's own run.

    PYTHONPATH=.:plugins/na_toolkit_nb201 python benchmarks/evolution_fill.py nb201-search \
        --strategies evolution,evolution-own-walks --seeds 10 [--device lat_pixel3] --out FILE

wrote benchmarks/evolution-fill.json and evolution-fill-pixel3.json (the JSON says which commit ran it);
`variant` is added to the CLI's JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import na_toolkit
import na_toolkit.plugins as plugins
from na_toolkit.builtin.strategies import RegularizedEvolution
from na_toolkit.cli.main import main
from na_toolkit.search.strategy import random_walk
from na_toolkit_nb201.bench import nb201_search

LEGACY = "evolution-own-walks"


class OwnWalksEvolution(RegularizedEvolution):
    name = LEGACY
    description = "evolution with its own initial-population walk loop (before fill_with_walks)"

    def ask(self, n):
        ctx = self.context
        seen = set(ctx.evaluated) | {ctx.seed_arch.hash}
        out = []
        filling = len(self.population) < self.population_size
        for _ in range(n * self.oversample):
            if filling:
                cand = None
                for _ in range(self.tries):
                    steps = int(ctx.rng.integers(1, self.max_moves + 1))
                    cand = random_walk(ctx.seed_arch, ctx.move_types, ctx.rng, steps, origin=self.name)
                    if cand is None or cand.hash not in seen:
                        break
            else:
                cand = self._mutate(seen)
            if cand is not None:
                seen.add(cand.hash)
                out.append(cand)
        return out


class Plugin:
    __name__ = "evolution_fill"

    @staticmethod
    @na_toolkit.hookimpl
    def na_register_strategies(registry):
        registry.add(OwnWalksEvolution)


_load = plugins.load_toolkit
plugins.load_toolkit = lambda *a, **k: plugins.extend_toolkit(_load(*a, **k), Plugin())
nb201_search.STRATEGY_OPTIONS[LEGACY] = dict(nb201_search.STRATEGY_OPTIONS["evolution"])
_pred = nb201_search._predictor_for
nb201_search._predictor_for = lambda s: _pred("evolution" if s == LEGACY else s)

if __name__ == "__main__":
    argv = ["bench", *sys.argv[1:]]
    rc = main(argv)
    if rc == 0 and "--out" in argv:
        path = Path(argv[argv.index("--out") + 1])
        doc = json.loads(path.read_text())
        doc["variant"] = {
            LEGACY: OwnWalksEvolution.description,
            "evolution": "initial population from na_toolkit.search.selection.fill_with_walks",
            "driver": "benchmarks/evolution_fill.py",
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
    sys.exit(rc)
