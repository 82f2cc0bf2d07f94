"""What the speed-ups of stop 31 keep exactly as it was: the store's JSON text, the garbage collector's
settings outside a search, and the NB201 networks built from memoised edges."""

from __future__ import annotations

import enum
import gc
import json
import threading

import numpy as np
import pytest

from na_toolkit.errors import StoreError
from na_toolkit.ir.nodes import Attrs
from na_toolkit.machine import SEARCH_GC_THRESHOLD, fewer_collections
from na_toolkit.store.codec import dumps, loads, to_json_value


class _Key(str):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


def test_the_codec_writes_plain_and_other_values_as_before():
    doc = {
        "nodes": [{"id": "a", "attrs": {"kernel": 3, "bias": False, "rate": 0.5}, "inputs": ["input"]}],
        "tuple": (1, 2.5, None),
        "floats": [float("nan"), float("inf"), -float("inf"), -0.0],
        "numpy": {"scalar": np.float32(0.25), "int": np.int64(7), "array": np.arange(3, dtype=np.int16)},
        "attrs": Attrs({"filters": 8}),
        _Key("sub"): _Key("value"),
        "level": _Level.HIGH,
        "nested": {"deep": [[True, 1], {"x": None}]},
    }
    plain = to_json_value(doc)
    # every value a JSON encoder writes as such: numpy as typed lists or Python scalars, non-finite tagged
    assert plain["tuple"] == [1, 2.5, None] and type(plain["nodes"][0]["attrs"]["bias"]) is bool
    assert plain["floats"][:3] == [{"__float__": "nan"}, {"__float__": "inf"}, {"__float__": "-inf"}]
    assert str(plain["floats"][3]) == "-0.0"
    assert plain["numpy"]["scalar"] == 0.25 and type(plain["numpy"]["int"]) is int
    assert plain["numpy"]["array"] == {"__ndarray__": [0, 1, 2], "dtype": "int16", "shape": [3]}
    assert plain["attrs"] == {"filters": 8} and type(plain["attrs"]) is dict
    assert plain["sub"] == "value" and plain["level"] == 3
    text = dumps(doc)
    assert text == json.dumps(plain, sort_keys=True)
    back = loads(text)
    assert np.array_equal(back["numpy"]["array"], np.arange(3)) and np.isnan(back["floats"][0])
    for bad in ({1: "x"}, {"a": {2: "x"}}, [{"a": {(1,): 0}}]):
        with pytest.raises(StoreError, match="keys must be strings"):
            dumps(bad)
    with pytest.raises(StoreError, match="cannot store a set"):
        dumps({"a": [{1, 2}]})


def test_an_architecture_document_is_stored_as_json_writes_it():
    from conftest import get_seed

    arch_json = get_seed("nb201").to_json()
    assert dumps(arch_json) == json.dumps(arch_json, sort_keys=True)


def test_fewer_collections_raises_the_threshold_and_restores_it():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with fewer_collections():
            assert gc.get_threshold() == (SEARCH_GC_THRESHOLD, 10, 10)
            with fewer_collections(threshold=100):  # nested: never lowered, the outer one restores
                assert gc.get_threshold()[0] == SEARCH_GC_THRESHOLD
            assert gc.get_threshold()[0] == SEARCH_GC_THRESHOLD
        assert gc.get_threshold() == (700, 10, 10)
        with pytest.raises(RuntimeError), fewer_collections():
            raise RuntimeError("the search failed")
        assert gc.get_threshold() == (700, 10, 10)  # restored whatever ends the block
        gc.set_threshold(50_000, 5, 5)  # already higher: left alone
        with fewer_collections():
            assert gc.get_threshold() == (50_000, 5, 5)
        gc.set_threshold(0)  # automatic collection switched off: stays off
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_fewer_collections_in_concurrent_searches_restores_after_the_last():
    before = gc.get_threshold()
    inside, release = threading.Event(), threading.Event()

    def other_search():
        with fewer_collections():
            inside.set()
            release.wait(5)

    try:
        gc.set_threshold(700, 10, 10)
        t = threading.Thread(target=other_search)
        with fewer_collections():
            t.start()
            assert inside.wait(5)
        assert gc.get_threshold()[0] == SEARCH_GC_THRESHOLD  # the other is still running
        release.set()
        t.join(5)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        release.set()
        gc.set_threshold(*before)
