"""The built-in strategies, seed for seed: a fixed-seed search on the NAS-Bench-201 table with each of them
(and each neural-architect path: unlimited and budgeted scoring, walks only, the fill-up walks, uniform
moves) evaluates exactly the networks it did before the strategies were rewritten on the public strategy
toolkit (na_toolkit.search.selection). A change of behaviour shows here as a changed evaluation sequence.

A deliberate change (a new default, a predictor that predicts otherwise) changes these sequences too:
regenerate them with `NA_UPDATE_STRATEGY_GOLDEN=1 pytest tests/test_strategy_golden.py -s` and paste what it
prints over EXPECTED, saying in the commit why the searches changed.
"""

from __future__ import annotations

import os

import pytest

from conftest import NB201_SEARCH, config_doc, default_toolkit, evaluated_in_order

pytest.importorskip("na_toolkit_nb201", reason="needs the NAS-Bench-201 plugin (make install)")

CASES = {
    "random": ("random", {}),
    "random-oversample": ("random", {"oversample": 3}),
    "evolution": ("evolution", {"population": 4, "sample": 2}),
    "neural-architect": ("neural-architect", {"episodes": 4, "updates": 2, "explore_episodes": 4, "elites": 3}),
    "budgeted": ("neural-architect", {"episodes": 4, "updates": 2, "explore_episodes": 4, "scoring_budget": 8}),
    "walks-only": (
        "neural-architect",
        {"episodes": 4, "updates": 2, "explore_episodes": 3, "policy": "none", "proposals": 1},
    ),
    "fill-up": ("neural-architect", {"episodes": 1, "episode_length": 1, "updates": 2, "explore_episodes": 0}),
    "fill-up-budgeted": (
        "neural-architect",
        {"episodes": 1, "episode_length": 1, "updates": 2, "explore_episodes": 0, "scoring_budget": 4},
    ),
    "uniform-moves": (
        "neural-architect",
        {"episodes": 4, "updates": 1, "explore_episodes": 0, "policy": "random", "seed_probability": 0.5},
    ),
}
EXPECTED = {
    "random": (
        "10ba94bc6b bdf1dd0a30 6510df79b0 2bf9575756 6e6209cbb6"
        " 1227363e68 f2eb42b003 e045ca214f 677cf6d69d badfe44154"
        " bbe34761be 167dec47c2",
        6.345661,
    ),
    "random-oversample": (
        "10ba94bc6b 6510df79b0 6e6209cbb6 1227363e68 f2eb42b003"
        " 253ff56470 4de4637af4 36246a1724 eead61eeac 139fe1067e"
        " 9e01e296f8 f775e8e757",
        9.339207,
    ),
    "evolution": (
        "10ba94bc6b bdf1dd0a30 6510df79b0 2bf9575756 6e6209cbb6"
        " e458da50c2 10d91820d5 3f5b2be1d4 7d84883b6e d5f2f49c9b"
        " 9e01e296f8 36e86e5752",
        6.269674,
    ),
    "neural-architect": (
        "10ba94bc6b 9a6bc05441 c1653ea06d dd74c71f53 eda9524b25"
        " df10bc4ece 1f7bae6c3c 63a4f4f3f5 14048dcd1b ac54a56e64"
        " 6510df79b0 69143ac2cf",
        10.046023,
    ),
    "budgeted": (  # a real result told alone is learned from by its rank among all of them (58c23e3)
        "10ba94bc6b eda9524b25 6510df79b0 9146be2f1c dd74c71f53"
        " f96486a490 b979f2f4c0 b8ee10d911 4c1c93ea84 a286b66054"
        " 11bc6c7f98 eae4a64f5d",
        10.00315,
    ),
    "walks-only": (
        "10ba94bc6b cc791b4764 6510df79b0 f2eb42b003 bc88e97e0f"
        " 167dec47c2 730be5277c 511b898b7c 7bd1e18eca 28f3441e10"
        " 9a9fc2571a 781ea289de",
        9.14113,
    ),
    "fill-up": (
        "10ba94bc6b 13edc28d24 a5d836cd86 77ad34b6ad cb449ee13d"
        " 761118ec85 ee43fc6c63 d787d6c046 96aa06ec38 685ee4da8c"
        " cc6d20ac2b f2da47e43c",
        4.842273,
    ),
    "fill-up-budgeted": (
        "10ba94bc6b 13edc28d24 f775e8e757 a5d836cd86 77ad34b6ad"
        " 761118ec85 c1653ea06d beb29e3ba4 cb449ee13d 8938d04f07"
        " 4fe207adcc f2da47e43c",
        6.67842,
    ),
    "uniform-moves": (
        "10ba94bc6b 6510df79b0 2dc6a01805 36246a1724 79634d34c1"
        " 799f595476 f2eb42b003 74482bfa0d 761118ec85 ee4cb85c97"
        " 6393353429 1b210f737b",
        9.95929,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fixed_seed_search_evaluates_what_it_always_did(case, tmp_path):
    name, options = CASES[case]
    doc = config_doc(NB201_SEARCH, tmp_path, strategy={"name": name, "options": options})
    evaluated = evaluated_in_order(doc, default_toolkit())
    hashes = " ".join(h[:10] for h, _o, _r in evaluated)
    reward_sum = round(sum(r for _h, _o, r in evaluated), 6)
    if os.environ.get("NA_UPDATE_STRATEGY_GOLDEN"):
        print(f'\n    "{case}": ("{hashes}", {reward_sum!r}),')
        pytest.skip("NA_UPDATE_STRATEGY_GOLDEN is set: the golden line is printed, not checked")
    assert (hashes, reward_sum) == EXPECTED[case]
    origins = {o for _h, o, _r in evaluated}
    if case.startswith("fill-up"):  # the path under test was taken: walks topped an ask up
        assert "neural-architect:random" in origins
