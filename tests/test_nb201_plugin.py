"""The NAS-Bench-201 plugin: search space in the IR, index <-> string, set_edge_op, table evaluator and time
model, bad tables, ONNX parity of one NB201 network."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

pytest.importorskip(
    "na_toolkit_nb201", reason="the NB201 plugin is not installed (pip install -e plugins/na_toolkit_nb201)"
)

import na_toolkit_nb201 as nb
from conftest import REPO_ROOT, default_toolkit, get_seed
from na_toolkit import caches
from na_toolkit.errors import ArchitectureError, ConfigError, DataError, MoveError, TimeModelError

OPTIMUM_C10 = 6111  # SOURCE.md: CIFAR-10 optimum, 94.373 % test accuracy


@pytest.fixture(scope="module")
def table():
    return nb.load_table()


def test_plugin_registers_through_its_entry_point():
    info = default_toolkit().plugins["nb201"]
    assert info.dist == "na-toolkit-nb201" and info.error is None
    assert info.registered == {
        "moves": ["set_edge_op"],
        "seeds": ["nb201"],
        "time_models": ["nb201-table"],
        "evaluators": ["nb201-table"],
        "benchmarks": ["predictor", "fewshot-latency", "nb201-search", "controller", "transfer", "whatif"],
    }


def test_networks_are_built_with_the_layer_types_given(table):
    tk = default_toolkit()
    arch = nb.nb201_architecture(nb.RESNET_CELL, layer_types=tk.layer_types)
    assert arch.layer_types is tk.layer_types and get_seed("nb201").hash == arch.hash
    # without a registry: the built-in layer types (all an NB201 network uses); the same network
    plain = nb.nb201_architecture(nb.RESNET_CELL)
    assert plain.layer_types is not tk.layer_types and plain.hash == arch.hash
    # the plugin's memo tables are the toolkit's caches (cleared with the others)
    assert {"nb201.networks", "nb201.cells", "nb201.parse_cell"} <= set(caches.cache_names())


def test_the_seed_family_parses_indices_and_cell_strings(table):
    tk = default_toolkit()
    seed = tk.seeds.get("nb201")
    by_index = seed.parse(str(OPTIMUM_C10), tk.layer_types, None)
    by_cell = seed.parse(table.str_of(OPTIMUM_C10), tk.layer_types, None)
    assert by_index.hash == by_cell.hash == nb.nb201_architecture(table.str_of(OPTIMUM_C10)).hash
    assert by_index.layer_types is tk.layer_types
    assert seed.parse("resnet-cifar", tk.layer_types, None) is None
    with pytest.raises(DataError, match="malformed NB201 cell string"):
        seed.parse("|conv~0|", tk.layer_types, None)


def test_every_command_taking_an_architecture_takes_a_cell(table, run_cli):
    # docs/nb201.md: `nb201:INDEX`, `nb201:<cell>` and a bare cell string name a cell wherever a command takes an
    # architecture (they were read by `predict` alone)
    cell = table.str_of(OPTIMUM_C10)
    want = nb.nb201_architecture(cell).hash
    for spec in (f"nb201:{OPTIMUM_C10}", f"nb201:{cell}", cell):
        shown = run_cli("arch", "show", spec, "--json")
        assert shown.returncode == 0, shown.stderr
        assert shown.json()["hash"] == want
    res = run_cli("hw", "estimate", "--device", "x86-cpu", "--time-model", "roofline", f"nb201:{OPTIMUM_C10}")
    assert res.returncode == 0, res.stderr
    res = run_cli("arch", "show", "simple-cnn:3")
    assert res.returncode == 2 and "seed 'simple-cnn' does not parse specs" in res.stderr


def test_the_table_evaluator_hands_out_training_rows(table):
    tk = default_toolkit()
    cls = tk.evaluators.get("nb201-table")
    rows = cls.training_rows("c10_valid_acc_200ep", 20, 3, tk.layer_types)
    assert len(rows.archs) == len(rows.values) == 20 and rows.source["rows"] == 20 and rows.source["seed"] == 3
    for arch, value in zip(rows.archs, rows.values):
        assert value == table.value(nb.nb201_cell_of(arch), "c10_valid_acc_200ep")
    assert [a.hash for a in cls.training_rows("c10_valid_acc_200ep", 20, 3, tk.layer_types).archs] == [
        a.hash for a in rows.archs
    ]
    with pytest.raises(ConfigError, match="1..15625"):
        cls.training_rows("c10_valid_acc_200ep", 10**6, 0, tk.layer_types)
    with pytest.raises(DataError, match="no column"):
        cls.training_rows("c10_no_such_column", 5, 0, tk.layer_types)
    with pytest.raises(DataError, match=r"has no column\(s\) nosuch; it has"):  # named once, asked twice
        table.require("nosuch", "nosuch")


def test_params_match_the_table_on_100_sampled_cells(table):
    rng = np.random.default_rng(0)
    rows = rng.choice(len(table), 100, replace=False)
    params_mb = table.column("c10_params_mb")
    for r in rows:
        arch = nb.nb201_architecture(table.arch_strs[r])
        assert abs(arch.params / 1e6 - params_mb[r]) <= 0.01 * params_mb[r], table.arch_strs[r]


@pytest.mark.parametrize("dataset", ["c100", "in16"])
def test_params_of_the_other_datasets(table, dataset):
    for r in (0, 1, OPTIMUM_C10):
        arch = nb.nb201_architecture_for(table.arch_strs[r], dataset)
        assert (
            abs(arch.params / 1e6 - table.column(f"{dataset}_params_mb")[r])
            <= 0.01 * table.column(f"{dataset}_params_mb")[r]
        )


def test_macro_structure_of_the_resnet_cell():
    arch = get_seed("nb201")
    assert arch.name == "nb201:" + nb.RESNET_CELL
    counts = {}
    for n in arch.nodes:
        counts[n.type] = counts.get(n.type, 0) + 1
    # stem 1 + 15 cells x 2 convs + 2 reduction blocks x 3 convs
    assert counts["conv2d"] == 1 + 15 * 2 + 2 * 3
    assert counts["zero"] == 15 * 2 and counts["identity"] == 15 * 2
    assert arch.shape("s2.c4.n3") == (64, 8, 8) and arch.output_shape == (10,)
    pool = arch.attrs("red1.short.pool")
    assert (pool["kernel"], pool["stride"]) == (2, 2)


def test_index_and_string_both_ways(table):
    s = nb.index_to_str(OPTIMUM_C10)
    assert nb.str_to_index(s) == OPTIMUM_C10
    assert table.value(OPTIMUM_C10, "c10_test_acc_200ep") == pytest.approx(94.373, abs=1e-3)
    rng = np.random.default_rng(1)
    for i in rng.choice(len(table), 50, replace=False):
        assert table.index_of(table.str_of(int(i))) == int(i)
    arch = nb.nb201_architecture(s)
    assert nb.nb201_index_of(arch) == OPTIMUM_C10
    assert nb.cell_string(nb.parse_cell(s)) == s
    with pytest.raises(DataError, match="arch_index 99999"):
        table.str_of(99999)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|none~0|+|none~0|none~1|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~3|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "none~0+none~0|none~1+none~0|none~1|none~2",
    ],
)
def test_malformed_cell_strings_are_data_errors(bad):
    with pytest.raises(DataError, match="malformed NB201 cell string"):
        nb.nb201_architecture(bad)


def test_cell_is_recognised_only_when_the_structure_matches():
    arch = get_seed("nb201")
    assert nb.nb201_cell_of(arch) == nb.RESNET_CELL
    # same name, other structure (a generic move edited it): not an NB201 network any more
    nodes = list(arch.nodes)
    i = next(k for k, n in enumerate(nodes) if n.id == "head.relu")
    nodes[i] = nodes[i].replace(type="relu6")
    edited = arch.with_nodes(nodes)
    assert edited.name == arch.name
    assert not nb.is_nb201(edited)
    with pytest.raises(ArchitectureError, match="not an NB201 network"):
        nb.nb201_cell_of(edited)
    assert not nb.is_nb201(get_seed("resnet-cifar"))


def test_set_edge_op_move():
    op = default_toolkit().moves.get("set_edge_op")
    arch = get_seed("nb201")
    assert op.mask(arch, "edge", {}).all()
    ops = nb.parse_cell(nb.RESNET_CELL)
    m = op.mask(arch, "op", {"edge": 0})
    assert list(m) == [o != ops[0] for o in nb.OPS]
    new = op.apply(arch, edge=5, op="nor_conv_1x1")
    new_ops = nb.parse_cell(nb.nb201_cell_of(new))
    assert new_ops[5] == "nor_conv_1x1" and new_ops[:5] == ops[:5]
    assert nb.nb201_cell_of(arch) == nb.RESNET_CELL  # pure: the input is unchanged
    with pytest.raises(MoveError, match=f"set_edge_op: op='{ops[0]}' is not valid for this architecture"):
        op.apply(arch, edge=0, op=ops[0])  # masked: the current op
    # random walks stay in the space
    rng = np.random.default_rng(0)
    a = arch
    for _ in range(10):
        a = op.apply(a, **op.sample(a, rng))
        assert nb.is_nb201(a)
    # other networks: everything masked
    resnet = get_seed("resnet-cifar")
    assert not op.is_applicable(resnet) and op.sample(resnet, rng) is None
    # other dataset sizes keep theirs
    c100 = nb.nb201_architecture_for(nb.RESNET_CELL, "in16")
    moved = op.apply(c100, edge=1, op="skip_connect")
    assert moved.output_shape == (120,) and moved.input_shape == (3, 16, 16)


def test_table_evaluator(table):
    ev = default_toolkit().evaluators.get("nb201-table")()
    arch = nb.nb201_architecture(table.str_of(OPTIMUM_C10))
    res = ev.evaluate(arch)
    assert res.arch_hash == arch.hash
    assert res.test_accuracy == pytest.approx(table.value(OPTIMUM_C10, "c10_test_acc_200ep") / 100)
    assert res.valid_accuracy == pytest.approx(table.value(OPTIMUM_C10, "c10_valid_acc_200ep") / 100)
    assert res.train_time_s == pytest.approx(table.value(OPTIMUM_C10, "c10_train_time_s_200ep"))
    assert res.extra["arch_index"] == OPTIMUM_C10
    ev100 = default_toolkit().evaluators.get("nb201-table")(dataset="c100", epochs=12)
    res100 = ev100.evaluate(table.str_of(OPTIMUM_C10))
    assert res100.valid_accuracy == pytest.approx(table.value(OPTIMUM_C10, "c100_valid_acc_12ep") / 100)
    with pytest.raises(ConfigError, match="dataset must be one of c10, c100, in16 .* got dataset='mnist'"):
        default_toolkit().evaluators.get("nb201-table")(dataset="mnist")
    with pytest.raises(ArchitectureError, match="'resnet-cifar' is not an NB201 network"):
        ev.evaluate(get_seed("resnet-cifar"))


def test_table_time_model(table):
    cls = default_toolkit().time_models.get("nb201-table")
    arch = get_seed("nb201")
    row = table.row(nb.RESNET_CELL)
    est = cls("gold_6226").estimate(arch)
    assert est.latency_ms == pytest.approx(row["lat_gold_6226"]) and est.batch_size == 1
    est = cls("titan_rtx").estimate(arch, batch_size=256)
    assert est.latency_ms == pytest.approx(row["lat_titan_rtx_256"]) and est.device == "titan_rtx_256"
    est = cls("lat_titan_rtx_32").estimate(arch)
    assert est.batch_size == 32 and est.warnings
    with pytest.raises(TimeModelError, match="devices: .*pixel2"):
        cls("tpu_v9").estimate(arch)
    with pytest.raises(TimeModelError, match="not an NB201 network"):
        cls("pixel2").estimate(get_seed("resnet-cifar"))


@pytest.mark.parametrize(
    ("device", "close"),
    [("pixel", "Did you mean 'pixel3', 'pixel2'?"), ("tpu_v9", ""), ("gold", "Did you mean 'gold_6226'?")],
)
def test_a_search_on_a_device_the_table_has_no_column_of_is_refused_before_a_run(tmp_path, capsys, device, close):
    # found at each estimate, it spent the whole budget on candidates it could not measure, and exited 0
    from na_toolkit.cli.main import main

    text = (REPO_ROOT / "examples" / "nb201-pixel3.toml").read_text().replace('"lat_pixel3"', f'"{device}"')
    (tmp_path / "c.toml").write_text(text)
    assert main(["search", str(tmp_path / "c.toml"), "--output", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"devices.pixel3.time_model (nb201-table on device '{device}'): nb201-table: no latency column" in err
    assert "(or 1080ti, 2080ti, titan_rtx: the column of the batch size)." in err and close in err
    assert not (tmp_path / "runs").exists()
    assert default_toolkit().time_models.get("nb201-table")("titan_rtx").column_for(32) == "lat_titan_rtx_32"


def test_a_search_from_a_seed_outside_the_space_of_the_table_evaluator_is_refused_before_a_run(tmp_path, capsys):
    # its one evaluation failed, set_edge_op found nothing to edit, and the search ended with exit 0
    from na_toolkit.cli.main import main

    get_seed("simple-cnn").save(tmp_path / "cnn.json")
    text = (REPO_ROOT / "examples" / "nb201-pixel3.toml").read_text()
    (tmp_path / "c.toml").write_text(text.replace('seed_network = "nb201"', 'seed_network = "cnn.json"'))
    assert main(["search", str(tmp_path / "c.toml"), "--output", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    seed = str(tmp_path / "cnn.json")
    assert f"evaluator 'nb201-table' cannot evaluate seed_network {seed!r} on dataset 'c10'" in err
    assert "is not an NB201 network" in err and not (tmp_path / "runs").exists()
    default_toolkit().evaluators.get("nb201-table")().check(get_seed("nb201"))  # the space's seed passes


def test_a_batch_size_the_table_has_no_column_at_is_refused_before_a_run(tmp_path, capsys):
    # titan_rtx was measured at 1, 32 and 256: at 8 every estimate failed and the search spent its budget
    from na_toolkit.cli.main import main

    text = (REPO_ROOT / "examples" / "nb201-pixel3.toml").read_text().replace('"lat_pixel3"', '"titan_rtx"')
    (tmp_path / "c.toml").write_text(
        text.replace('time_model = "nb201-table"', 'time_model = "nb201-table"\nbatch_size = 8')
    )
    assert main(["search", str(tmp_path / "c.toml"), "--output", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "devices.pixel3.batch_size = 8: the time model 'nb201-table'" in err
    assert "no latency column for device 'titan_rtx' at batch size 8" in err
    assert not (tmp_path / "runs").exists()
    (tmp_path / "c.toml").write_text(
        text.replace('time_model = "nb201-table"', 'time_model = "nb201-table"\nbatch_size = 32')
    )
    doc_ok = main(["search", str(tmp_path / "c.toml"), "--output", str(tmp_path / "runs"), "--no-progress", "-q"])
    assert doc_ok == 0


def _write_subset(path, table, columns, rows=range(20), gz=False, mangle=None):
    lines = [",".join(["arch_index", "arch_str", *columns])]
    for r in rows:
        fields = [
            str(int(table.arch_index[r])),
            table.arch_strs[r],
            *(repr(float(table.column(c)[r])) for c in columns),
        ]
        lines.append(",".join(fields))
    if mangle:
        lines = mangle(lines)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_other_table_via_option(tmp_path, table):
    path = _write_subset(
        tmp_path / "mini.csv.gz", table, ["c10_valid_acc_200ep", "c10_test_acc_200ep", "lat_pixel2"], gz=True
    )
    mini = nb.load_table(path)
    assert len(mini) == 20 and mini.devices == ["lat_pixel2"]
    cell = table.arch_strs[3]
    ev = default_toolkit().evaluators.get("nb201-table")(table=str(path))
    assert ev.evaluate(cell).train_time_s is None  # no time column in this table: not a guess
    assert ev.evaluate(cell).valid_accuracy == pytest.approx(table.value(cell, "c10_valid_acc_200ep") / 100)
    tm = default_toolkit().time_models.get("nb201-table")("pixel2", table=str(path))
    assert tm.estimate(cell).latency_ms == table.value(cell, "lat_pixel2")
    with pytest.raises(DataError, match="not in NB201 table"):
        ev.evaluate(table.arch_strs[100])


def test_bad_tables_are_data_errors(tmp_path, table):
    no_valid = _write_subset(tmp_path / "a.csv", table, ["c10_test_acc_200ep"])
    with pytest.raises(DataError, match="no column.*c10_valid_acc_200ep"):
        default_toolkit().evaluators.get("nb201-table")(table=str(no_valid)).evaluate(table.arch_strs[0])
    no_str = tmp_path / "b.csv"
    no_str.write_text("arch_index,c10_test_acc_200ep\n0,1.0\n")
    with pytest.raises(DataError, match="no column.*arch_str"):
        nb.load_table(no_str)

    def bad_cell(lines):
        lines[5] = lines[5].replace("~0|", "~7|", 1)
        return lines

    with pytest.raises(DataError, match="line 6: malformed NB201 cell string"):
        nb.load_table(_write_subset(tmp_path / "c.csv", table, ["c10_test_acc_200ep"], mangle=bad_cell))

    def bad_number(lines):
        lines[3] = lines[3].rsplit(",", 1)[0] + ",n/a"
        return lines

    with pytest.raises(DataError, match="line 4: column c10_test_acc_200ep holds 'n/a'"):
        nb.load_table(_write_subset(tmp_path / "d.csv", table, ["c10_test_acc_200ep"], mangle=bad_number))
    with pytest.raises(DataError, match="cannot read NB201 table"):
        nb.load_table(tmp_path / "missing.csv")


def test_onnx_parity_of_an_nb201_network(table):
    from na_toolkit.cli.arch import onnx_parity_max_abs_err

    # every op of the space: conv 1x1 and 3x3, avg pool, skip, zero
    cell = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    arch = nb.nb201_architecture(cell)
    model = arch.to_torch().eval()
    assert arch.output_shape == (10,)
    assert onnx_parity_max_abs_err(arch, model=model) <= 1e-4
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == arch.params


def test_networks_from_memoised_edges_equal_networks_built_cold(table):
    # the edges of a cell are memoised by position, op, input and width (space._EDGES): a cell built from
    # edges that other cells (and other datasets' sizes) left behind is the network built from nothing
    rng = np.random.default_rng(1)
    cells = [table.arch_strs[r] for r in rng.choice(len(table), 12, replace=False)]
    datasets = ("c10", "in16", "c100")
    cold = {}
    for cell in cells:
        for dataset in datasets:
            caches.clear_caches()  # nothing memoised: every node and edge built anew
            arch = nb.nb201_architecture_for(cell, dataset)
            cold[cell, dataset] = (arch.to_json(), arch.hash)
    caches.clear_caches()
    for dataset in datasets:  # warm: each cell now meets the edges of those before it, of every size
        for cell in cells:
            warm = nb.nb201_architecture_for(cell, dataset)
            assert (warm.to_json(), warm.hash) == cold[cell, dataset]
    from na_toolkit_nb201.space import _EDGES

    assert _EDGES  # the edges were memoised
