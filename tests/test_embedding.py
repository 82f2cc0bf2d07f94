"""The network embedding: vocabularies declared by the layer types, exact tokens, one table per attribute
kind, plugin layer types embedded without core code, the saved vocabulary, truncated back-propagation.

The central property: on every shipped seed, every valid move that changes the network's parameters, FLOPs
or shapes changes the embedding's input (`tokenizer.encode`). Moves are enumerated from their own masks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import na_toolkit
from conftest import default_toolkit
from na_toolkit.builtin.moves import CHANNEL_CHOICES, FILTER_CHOICES, KERNEL_CHOICES, RATE_CHOICES
from na_toolkit.embedding import ArchitectureTokenizer, make_network_embedding
from na_toolkit.errors import DataError
from na_toolkit.ir.builder import ArchitectureBuilder
from na_toolkit.ir.layers import (
    LEGACY_FEATURE_SLOTS,
    AttrSpec,
    EmbeddedCategorical,
    EmbeddedFloat,
    EmbeddedInt,
    LayerType,
    embedded_attr_from_json,
)
from na_toolkit.plugins import load_toolkit


def _tokenizer(tk=None) -> ArchitectureTokenizer:
    return ArchitectureTokenizer.for_registry((tk or default_toolkit()).layer_types)


def _assignments(op, arch) -> list[dict]:
    """Every parameter assignment of `op` on `arch` that its masks admit."""
    out: list[dict] = []

    def walk(chosen: dict, k: int) -> None:
        specs = op.params()
        if k == len(specs):
            out.append(dict(chosen))
            return
        p = specs[k]
        for i in np.flatnonzero(op.admitted(arch, p.name, chosen)):
            walk({**chosen, p.name: p.value_at(int(i))}, k + 1)

    walk({}, 0)
    return out


def _signature(arch) -> tuple:
    return arch.params, arch.flops, tuple(arch.shape(n.id) for n in arch.nodes)


def _same_tokens(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool((a == b).all())


@pytest.mark.parametrize("seed", ["simple-cnn", "resnet-cifar", "mobilenetv2-cifar", "nb201"])
def test_every_move_that_changes_cost_or_shapes_changes_the_tokens(seed):
    tk = default_toolkit()
    tok = _tokenizer(tk)
    arch = tk.seed(seed)
    base, sig = tok.encode(arch), _signature(arch)
    checked = 0
    for name in tk.moves.names():
        op = tk.moves.get(name)
        for params in _assignments(op, arch):  # exhaustive: about 12,000 moves in all, ~6 s on 2 quiet cores
            child = op.apply(arch, **params)
            if _signature(child) != sig:
                assert not _same_tokens(tok.encode(child), base), f"{seed}: {name} {params} left the tokens unchanged"
                checked += 1
    assert checked >= 40


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(["resnet-cifar", "mobilenetv2-cifar", "nb201"]), draws=st.integers(0, 2**32 - 1))
def test_random_walks_change_the_tokens_at_every_step(seed, draws):
    """Random valid moves on edited networks (a walk of 3 moves): each step that changes parameters, FLOPs
    or shapes changes the tokens."""
    tk = default_toolkit()
    tok = _tokenizer(tk)
    rng = np.random.default_rng(draws)
    arch = tk.seed(seed)
    ops = [tk.moves.get(n) for n in tk.moves.names()]
    for _ in range(3):
        live = [op for op in ops if op.is_applicable(arch)]
        op = live[int(rng.integers(len(live)))]
        params = op.sample(arch, rng)
        assert params is not None
        child = op.apply(arch, **params)
        if _signature(child) != _signature(arch):
            assert not _same_tokens(tok.encode(child), tok.encode(arch)), f"{op.name} {params}"
        arch = child


def test_every_value_a_builtin_move_sets_is_a_token_of_its_own():
    tok = _tokenizer()
    vocab = dict(tok.tables)
    checks = [
        ("generic.channels", CHANNEL_CHOICES + FILTER_CHOICES),
        ("conv2d.kernel", KERNEL_CHOICES),
        ("dropout.rate", RATE_CHOICES),
        ("generic.distance", tuple(range(1, 1025))),
        ("generic.height", tuple(range(1025))),
    ]
    for key, values in checks:
        tokens = [vocab[key].index(v) for v in set(values)]
        assert None not in tokens and len(set(tokens)) == len(set(values)), key
    # the collisions of the hashed, log2-bucketed tokenizer are gone: 32 vs 48 channels, dist=1 vs hw=1
    assert vocab["generic.channels"].index(32) != vocab["generic.channels"].index(48)
    assert tok.offsets["generic.distance"] != tok.offsets["generic.height"]


def test_scaling_a_conv_from_32_to_48_channels_changes_its_row():
    tk = default_toolkit()
    tok = _tokenizer(tk)
    seed = tk.seed("simple-cnn")  # conv 16 -> conv 32: scale the second conv
    scale = tk.moves.get("scale")
    pos = [i for i, n in enumerate(seed.nodes) if n.type == "conv2d"][1]
    child = scale.apply(seed, position=pos, attribute="channels", value=48)
    a, b = tok.encode(seed), tok.encode(child)
    assert a.shape == b.shape and not (a[pos] == b[pos]).all()


def test_out_of_vocabulary_values_get_the_tables_own_token():
    tok = ArchitectureTokenizer.for_registry(default_toolkit().layer_types, max_channels=64)
    b = ArchitectureBuilder((3, 8, 8), layer_types=default_toolkit().layer_types)
    x = b.layer("conv2d", b.input, filters=128, kernel=3)
    x = b.layer("conv2d", x, filters=256, kernel=3)
    rows = tok.encode(b.build())
    oov = tok.offsets["generic.channels"]
    assert rows[0, 1] == oov and rows[1, 1] == oov  # 128 and 256 > max_channels: one OOV token
    assert rows[0, 1] != tok.offsets["generic.type"]


# ---- plugin layer types ---------------------------------------------------------------------------------
class ToyGate(LayerType):
    """A third-party layer type: declares a categorical and a float attribute of its own."""

    name = "toy_gate"
    description = "x * gate (test plugin)"
    attrs = {"mode": AttrSpec(str, "soft", choices=("soft", "hard")), "temperature": AttrSpec(float, 1.0, min=0.1)}

    def embedded_attrs(self):
        return (EmbeddedCategorical("mode", ("soft", "hard")), EmbeddedFloat("temperature", 0.1, 4.0, 0.1))


class OldStyle(LayerType):
    """A layer type written before declarations: an attribute schema and `features()` only."""

    name = "toy_old"
    description = "identity with a knob (test plugin)"
    attrs = {"knob": AttrSpec(int, 3, min=1, max=9), "flag": AttrSpec(bool, False)}

    def features(self, attrs, in_shapes, out_shape):
        return {"knob_squared": attrs["knob"] ** 2}


class ToyPlugin:
    __name__ = "toy_layer_plugin"

    @staticmethod
    @na_toolkit.hookimpl
    def na_register_layer_types(registry):
        registry.add(ToyGate())
        registry.add(OldStyle())


def _toy_net(tk, mode="soft", temperature=1.0, knob=3):
    b = ArchitectureBuilder((3, 8, 8), layer_types=tk.layer_types)
    x = b.layer("conv2d", b.input, filters=8, kernel=3)
    x = b.layer("toy_gate", x, mode=mode, temperature=temperature)
    x = b.layer("toy_old", x, knob=knob)
    return b.build()


def test_a_plugin_layer_type_gets_tables_of_its_own_without_core_code():
    tk = load_toolkit(entry_points=False, extra_plugins=(ToyPlugin(),))
    tok = _tokenizer(tk)
    keys = [k for k, _ in tok.tables]
    assert {"toy_gate.mode", "toy_gate.temperature"} <= set(keys)
    # the old-style type embeds its schema and its features() through the legacy slots
    assert {"toy_old.knob", "toy_old.flag", "toy_old.feature0"} <= set(keys)
    assert len([k for k in keys if k.startswith("toy_old.feature")]) == LEGACY_FEATURE_SLOTS
    net = _toy_net(tk)
    rows = tok.encode(net)
    start, end = tok.offsets["toy_gate.mode"], tok.offsets["toy_gate.mode"] + 3
    assert any(start < t < end for t in rows[1])  # the gate's row holds a token of its own table
    assert tok.offsets["toy_old.feature0"] + 1 + 9 in rows[2]  # knob 3: feature knob_squared = 9
    for other in (_toy_net(tk, mode="hard"), _toy_net(tk, temperature=2.5), _toy_net(tk, knob=4)):
        assert not _same_tokens(tok.encode(other), rows)
    emb = make_network_embedding(tok)
    gate_table = emb.table("toy_gate.mode")
    assert gate_table.num_embeddings == 3  # out of vocabulary, soft, hard
    h = emb.embed(tok, [net, _toy_net(tk, mode="hard")])
    h.sum().backward()
    assert gate_table.weight.grad.abs().sum() > 0  # the plugin's rows are trained


def test_the_saved_vocabulary_reloads_token_for_token():
    tk = load_toolkit(entry_points=False, extra_plugins=(ToyPlugin(),))
    tok = _tokenizer(tk)
    again = ArchitectureTokenizer.from_json(tok.to_json())
    assert again.table_sizes == tok.table_sizes and again.max_tokens == tok.max_tokens
    for arch in (_toy_net(tk), default_toolkit().seed("resnet-cifar")):
        assert np.array_equal(again.encode(arch), tok.encode(arch))
    for attr in (EmbeddedCategorical("a", ("x", 1, True)), EmbeddedInt("b", -1, 5), EmbeddedFloat("c", 0.0, 1.0, 0.25)):
        assert embedded_attr_from_json(attr.to_json()) == attr
    with pytest.raises(DataError, match="version"):
        ArchitectureTokenizer.from_json({"layer_types": ["conv2d"], "feature_table_size": 1024, "max_tokens": 12})


def test_categorical_values_keep_their_types_apart():
    attr = EmbeddedCategorical("v", (True, 1, 1.5))
    assert [attr.index(v) for v in (True, 1, 1.5, 2, "1")] == [0, 1, 2, None, None]
    assert EmbeddedInt("k", 1, 7).index(True) is None and EmbeddedInt("k", 1, 7).index(3.0) == 2
    assert EmbeddedFloat("r", 0.0, 0.5, 0.1).index(0.30000000000000004) == 3


# ---- the module -----------------------------------------------------------------------------------------
def test_forward_on_distinct_rows_equals_forward_on_tokens_and_truncation_keeps_values():
    tk = default_toolkit()
    tok = _tokenizer(tk)
    archs = [tk.seed("resnet-cifar"), tk.seed("simple-cnn"), tk.seed("mobilenetv2-cifar")]
    torch.manual_seed(0)
    emb = make_network_embedding(tok)
    tokens, lengths = tok.batch(archs)
    h, layers, outs = emb(torch.from_numpy(tokens), torch.from_numpy(lengths))
    rows, index, lengths2 = tok.batch_rows(archs)
    args = torch.from_numpy(rows), torch.from_numpy(index), torch.from_numpy(lengths2)
    h2, layers2, outs2 = emb.forward_rows(*args)
    assert torch.allclose(h, h2, atol=1e-6) and torch.allclose(outs, outs2, atol=1e-6)
    h3, _, outs3 = emb.forward_rows(*args, grad_steps=4)
    assert torch.allclose(h, h3, atol=1e-6) and torch.allclose(outs, outs3, atol=1e-6)
    # the graph starts 4 layers before the shortest network's end: no layer before that gets a gradient
    # through the network LSTM, every one after it does
    layers3 = emb.forward_rows(*args, grad_steps=4)[1].detach().requires_grad_(True)
    h4, _ = emb.network(layers3, torch.from_numpy(lengths2), grad_steps=4)
    h4.sum().backward()
    grad = layers3.grad.abs().sum(dim=2)
    split = int(lengths2.min()) - 4
    assert grad[:, :split].sum() == 0 and (grad[2, split : lengths2[2]] > 0).all()


def test_row_order_does_not_depend_on_the_tokenizers_history():
    tk = default_toolkit()
    archs = [tk.seed("resnet-cifar"), tk.seed("simple-cnn")]
    fresh, used = _tokenizer(tk), _tokenizer(tk)
    used.encode(tk.seed("mobilenetv2-cifar"))  # other rows first: other row ids
    a, b = fresh.batch_rows(archs), used.batch_rows(archs)
    assert len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_pickled_tokenizer_encodes_alike():
    import pickle

    tk = default_toolkit()
    tok = _tokenizer(tk)
    arch = tk.seed("mobilenetv2-cifar")
    again = pickle.loads(pickle.dumps(tok))
    assert np.array_equal(again.encode(arch), tok.encode(arch))
    assert np.array_equal(again.encode(tk.seed("nb201")), tok.encode(tk.seed("nb201")))


def test_a_bad_declaration_is_a_one_line_error_naming_it():
    from na_toolkit.errors import ArchitectureError

    with pytest.raises(ArchitectureError, match="'toy'.*'k' twice"):
        ArchitectureTokenizer({"toy": (EmbeddedInt("k", 1, 3), EmbeddedInt("k", 1, 5))})
    with pytest.raises(ArchitectureError, match="min <= max"):
        EmbeddedInt("k", 5, 1)
    with pytest.raises(ArchitectureError, match="JSON scalars"):
        EmbeddedCategorical("c", ("a", "a"))


def test_a_plugin_layer_type_leaves_every_other_starting_row_and_module_as_it_was():
    """A seeded embedding starts from the same numbers whichever other layer types are installed: a plugin's
    type adds its own rows and tables and changes no other (a seeded search does not change because an
    unrelated plugin is installed), and what is made after the embedding draws the same numbers."""

    def start(tk):
        torch.manual_seed(7)
        tok = _tokenizer(tk)
        emb = make_network_embedding(tok)
        after = torch.nn.Linear(4, 4).weight.detach().clone()  # a module made after it (a controller's head)
        rows = {}
        for key, _ in tok.tables:
            labels = tok.row_labels.get(key) or [str(i) for i in range(emb.table(key).num_embeddings)]
            rows.update({(key, lab): w for lab, w in zip(labels, emb.table(key).weight.detach())})
        return rows, after, {n: p.detach() for n, p in emb.named_parameters() if "lstm" in n}

    plain, plain_after, plain_lstm = start(load_toolkit(entry_points=False))
    more, more_after, more_lstm = start(load_toolkit(entry_points=False, extra_plugins=(ToyPlugin(),)))
    added = set(more) - set(plain)
    assert set(plain) < set(more) and {key for key, _ in added} >= {"toy_gate.mode", "toy_gate.temperature"}
    assert any(label == "'toy_gate'" for _, label in added)  # its row of the layer-type table
    assert all(torch.equal(plain[k], more[k]) for k in plain)
    assert torch.equal(plain_after, more_after)
    assert plain_lstm.keys() == more_lstm.keys() and all(torch.equal(plain_lstm[n], more_lstm[n]) for n in plain_lstm)
    # each row its own draw, N(0, 1) like nn.Embedding's: no two rows alike
    table = torch.stack(list(plain.values()))
    assert len(torch.unique(table, dim=0)) == len(table) and 0.8 < float(table.std()) < 1.2
