"""The run stores (SQLite and in memory, one contract): records round-trip, one transaction per evaluation,
no pickles, typed errors."""

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import default_toolkit, get_seed
from na_toolkit.errors import StoreError
from na_toolkit.store import (
    SCHEMA_VERSION,
    STORE_FILE,
    MemoryRunStore,
    RunStore,
    SQLiteRunStore,
    decode_state,
    encode_state,
)


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    config = {"evaluations": 3, "dataset": "digits"}
    if request.param == "sqlite":
        s: RunStore = SQLiteRunStore.create(tmp_path / STORE_FILE, "run-1", config)
    else:
        s = MemoryRunStore("run-1", config)
    yield s
    s.close()


def reopen(store: RunStore) -> RunStore:
    """The store as a later process sees it: the SQLite one closed and opened again from its run folder."""
    if isinstance(store, SQLiteRunStore):
        store.close()
        return SQLiteRunStore.open(store.path.parent)  # a run folder opens its store
    return store


def test_run_record_and_status(store, tmp_path):
    run = store.run()
    assert run.run_id == "run-1" and run.status == "running" and run.config["dataset"] == "digits"
    store.set_status("finished", {"best": {"cpu": "abc"}})
    again = reopen(store)
    assert again.run().status == "finished" and again.run().result == {"best": {"cpu": "abc"}}
    with pytest.raises(StoreError, match="unknown run status"):
        again.set_status("paused")
    again.close()


def test_sqlite_store_is_wal(tmp_path):
    SQLiteRunStore.create(tmp_path / STORE_FILE, "r", {}).close()
    # WAL: concurrent readers do not block the single writer
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        (
            "evaluations",
            "metrics_json",
            '{"accuracy": 0.9',
            r"metrics \(the store may be damaged.*\) is not valid JSON",
        ),
        ("evaluations", "metrics_json", '{"accuracy": "high"}', "metrics.accuracy"),
        ("evaluations", "eval_time_s", "soon", "eval_time_s"),
        ("runs", "config_json", "\x00garbage", r"stored config \(the store may be damaged.*\) is not valid JSON"),
        ("runs", "status", "paused", "status"),
    ],
)
def test_a_damaged_store_row_is_one_store_error_naming_it(tmp_path, table, column, value, message):
    """Records read back from SQLite are checked by their (pydantic) types: a store copied while it was
    written, or edited by hand, is a StoreError naming what is wrong, never a traceback deep in a report."""
    arch = get_seed("simple-cnn")
    s = SQLiteRunStore.create(tmp_path / STORE_FILE, "run-1", {"evaluations": 3})
    s.add_evaluation(arch.hash, arch.to_json(), {"accuracy": 0.9}, {"valid_accuracy": 0.9}, round=0, eval_time_s=1.0)
    s.close()
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
    conn.commit()
    conn.close()
    again = SQLiteRunStore.open(tmp_path)
    with pytest.raises(StoreError, match=message):
        again.run() if table == "runs" else again.evaluations()
    again.close()


def test_evaluations_round_trip_in_order_and_never_twice(store, tmp_path):
    arch = get_seed("simple-cnn")
    written = store.run().updated_s
    time.sleep(0.01)
    rec = store.add_evaluation(
        arch.hash,
        arch.to_json(),
        {"accuracy": 0.9, "latency_ms@cpu": 0.05},
        {"valid_accuracy": 0.9},
        round=0,
        eval_time_s=1.5,
        targets={"accuracy": 0.9, "train_time_s": 1.2},
    )
    assert rec.seq == 0
    assert store.run().updated_s > written  # an evaluation is a write of the run (`runs` shows it advance)
    store.add_evaluation(
        "feedbeef00000000", arch.to_json(), {"accuracy": 0.1}, {}, round=1, eval_time_s=0.1, error="diverged"
    )
    with pytest.raises(StoreError, match="already evaluated"):
        store.add_evaluation(arch.hash, arch.to_json(), {"accuracy": 0.5}, {}, round=2, eval_time_s=0.0)
    s = reopen(store)
    evs = s.evaluations()
    assert [e.arch_hash for e in evs] == [arch.hash, "feedbeef00000000"] and [e.seq for e in evs] == [0, 1]
    assert evs[0].metrics == {"accuracy": 0.9, "latency_ms@cpu": 0.05} and evs[0].eval_time_s == 1.5
    assert evs[1].error == "diverged"
    assert s.evaluation(arch.hash).arch_json == arch.to_json()
    assert s.evaluation("0" * 16) is None
    assert s.predictor_data("accuracy") == {arch.hash: 0.9}
    assert s.predictor_data("train_time_s") == {arch.hash: 1.2}
    assert s.count_evaluations() == 2
    s.close()


def test_values_read_back_are_the_same_in_both_stores(tmp_path):
    # numpy values, non-finite floats and tuples come back as the SQLite store gives them, from either store
    doc = {"a": np.float32(0.5), "b": float("inf"), "c": (1, 2), "d": np.arange(3)}
    stores = [SQLiteRunStore.create(tmp_path / STORE_FILE, "r", {}), MemoryRunStore("r", {})]
    back = []
    for s in stores:
        s.add_evaluation("h", {"x": [1]}, {"accuracy": 0.5}, doc, round=0, eval_time_s=0.0)
        s.add_measurement("h", "cpu", "tm", "batch=1", doc)
        back.append((s.evaluation("h").result, s.measurement("h", "cpu", "tm", "batch=1")))
        s.close()
    (r0, m0), (r1, m1) = back
    for x, y in ((r0, r1), (m0, m1)):
        assert x.keys() == y.keys() and x["a"] == y["a"] == 0.5 and x["b"] == y["b"] == float("inf")
        assert x["c"] == y["c"] == [1, 2] and np.array_equal(x["d"], y["d"]) and x["d"].dtype == y["d"].dtype


def test_measurements_keyed_by_device_model_and_settings(store):
    store.add_measurement("h1", "cpu", "onnxruntime", "batch=1", {"latency_ms": 0.05, "latency_p90_ms": 0.06})
    store.add_measurement("h1", "cpu", "onnxruntime", "batch=8", {"latency_ms": 0.2})
    assert store.measurement("h1", "cpu", "onnxruntime", "batch=1") == {"latency_ms": 0.05, "latency_p90_ms": 0.06}
    assert store.measurement("h1", "cpu", "onnxruntime", "batch=8") == {"latency_ms": 0.2}
    assert store.measurement("h1", "cuda:0", "onnxruntime", "batch=1") is None
    assert store.count_measurements() == 2


def test_checkpoints_json_numpy_and_torch_without_pickle(store):
    rng_state = np.random.default_rng(3).bit_generator.state
    store.save_checkpoint(0, "rng", rng_state)
    store.save_checkpoint(0, "strategy", {"population": ["a", "b"], "scores": np.arange(3.0), "inf": float("inf")})
    store.save_checkpoint(1, "strategy", {"population": ["c"], "scores": np.zeros((2, 2), dtype=np.float32)})
    weights = {"w": torch.arange(6.0).reshape(2, 3), "step": 7}
    store.save_checkpoint(1, "controller", weights)
    assert store.load_checkpoint("rng") == (0, rng_state)
    rnd, state = store.load_checkpoint("strategy")
    assert rnd == 1 and state["population"] == ["c"] and state["scores"].dtype == np.float32
    rnd, state = store.load_checkpoint("strategy", round=0)
    assert rnd == 0 and np.array_equal(state["scores"], np.arange(3.0)) and state["inf"] == float("inf")
    rnd, state = store.load_checkpoint("controller")
    assert torch.equal(state["w"], weights["w"]) and state["step"] == 7
    assert store.load_checkpoint("missing") is None
    store.save_checkpoint(2, "strategy", {"population": []})  # only the latest two rounds of a kind stay
    assert store.load_checkpoint("strategy", round=0) is None and store.load_checkpoint("strategy", round=1)[0] == 1
    assert store.checkpoint_kinds() == ["controller", "rng", "strategy"]
    # an RNG restored from its checkpoint continues the same stream
    g = np.random.default_rng()
    g.bit_generator.state = store.load_checkpoint("rng")[1]
    assert g.random() == np.random.default_rng(3).random()


def test_state_encoding_refuses_arbitrary_objects():
    fmt, blob = encode_state({"a": [1, 2.5, None, "x"]})
    assert fmt == "json" and decode_state(fmt, blob) == {"a": [1, 2.5, None, "x"]}
    with pytest.raises(StoreError, match="cannot store a object"):
        encode_state({"a": object()})
    with pytest.raises(StoreError, match="format"):
        decode_state("pickle", b"")


def test_weights_and_artifacts(store):
    sd = {"layers.conv.weight": torch.ones(2, 1, 3, 3)}
    store.save_weights("h1", sd)
    assert torch.equal(store.load_weights("h1")["layers.conv.weight"], sd["layers.conv.weight"])
    assert store.load_weights("h2") is None
    store.save_artifact("hardware:cpu", {"peak_flops": 1e11})
    assert store.artifact("hardware:cpu") == {"peak_flops": 1e11} and store.artifact("x") is None


def test_bad_stores_raise_store_error(tmp_path):
    with pytest.raises(StoreError, match="no run store"):
        SQLiteRunStore.open(tmp_path / "nowhere")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(StoreError, match="not an SQLite file"):
        SQLiteRunStore.open(junk)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="missing table"):
        SQLiteRunStore.open(other)
    s = SQLiteRunStore.create(tmp_path / "v.sqlite", "r", {})
    s._conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    s.close()
    with pytest.raises(StoreError, match=f"schema version '99'.*reads version {SCHEMA_VERSION}"):
        SQLiteRunStore.open(tmp_path / "v.sqlite")
    with pytest.raises(StoreError, match="already exists"):
        SQLiteRunStore.create(tmp_path / "v.sqlite", "r", {})


def test_damaged_store_is_a_store_error(tmp_path):
    path = tmp_path / STORE_FILE
    s = SQLiteRunStore.create(path, "r", {})
    for i in range(200):
        s.add_evaluation(f"{i:016x}", {"x": "y" * 200}, {"accuracy": 0.5}, {}, round=0, eval_time_s=0.0)
    s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 6 * page] = b"\xff" * (4 * page)  # overwrite b-tree pages, keep the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="is not a readable run store: database disk image is malformed"):
        s = SQLiteRunStore.open(path)
        s.evaluations()


HOLDER = """
import sys, time
from na_toolkit.store.lock import RunLock

lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_one_writer_per_run_and_the_lock_dies_with_its_holder(tmp_path):
    """A second search on a run that another process writes is refused before the store is touched, with a
    message naming the holder; the kernel drops the lock when the holder is killed (no stale lock)."""
    import signal
    import subprocess
    import sys

    from na_toolkit.search import run_search
    from na_toolkit.store.lock import RunLock

    folder = tmp_path / "run"
    SQLiteRunStore.create(folder / STORE_FILE, "run", {"evaluations": 3}).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match=rf"being written by another search \(pid {holder.pid} on host "):
            RunLock(folder).acquire()
        with pytest.raises(StoreError, match=rf"pid {holder.pid}"):
            run_search(resume=folder, toolkit=default_toolkit(), progress=False)
        again = SQLiteRunStore.open(folder)
        assert again.run().status == "running"  # the refused resume stamped nothing
        again.close()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with RunLock(folder):  # free again
            pass
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_deleted_lock_file_keeps_the_run_locked_and_its_holder_named(tmp_path):
    """The lock is on the run folder: `run.lock` deleted by hand lets no second writer in, and the refusal,
    `runs` and `report` still name the holder (the kernel's PID of the lock)."""
    import subprocess
    import sys

    from na_toolkit.store.lock import LOCK_FILE, RunLock, live_holder

    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (folder / LOCK_FILE).unlink()
        with pytest.raises(StoreError, match=rf"\(pid {holder.pid} on host .*\); .*`kill {holder.pid}`"):
            RunLock(folder).acquire()
        assert not (folder / LOCK_FILE).exists()  # the refused writer left the folder as it was
        seen = live_holder(folder)
        assert seen is not None and seen.startswith(f"pid {holder.pid} on host ")
        holder.kill()
        holder.wait(timeout=30)
        assert live_holder(folder) is None
        with RunLock(folder):  # a killed holder's lock goes with it
            assert live_holder(folder).startswith(f"pid {os.getpid()} on host ")
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_full_disk_mid_run_is_a_store_error_and_keeps_what_was_stored(tmp_path):
    """A write SQLite refuses (here a full database: max_page_count reached, SQLITE_FULL as on a full disk)
    is one StoreError saying what to do, not an sqlite3 traceback; the transaction is rolled back."""
    store = SQLiteRunStore.create(tmp_path / STORE_FILE, "r", {"evaluations": 3})
    with store:
        store.save_artifact("small", {"x": 1})
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match=r"cannot write the run store: database or disk is full; .*resume"):
            store.save_artifact("big", {"x": "y" * 200_000})
        assert store.artifact("small") == {"x": 1} and store.artifact("big") is None


def test_resuming_a_store_that_cannot_be_written_is_refused_before_any_write(tmp_path):
    """SQLite opens a file it cannot write read-only and fails at the first write (mid-resume, with a
    traceback): the store says so as it is opened."""
    import shutil
    import subprocess

    path = tmp_path / STORE_FILE
    SQLiteRunStore.create(path, "r", {"evaluations": 3}).close()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode:
            pytest.skip("root, and no chattr +i here to make a file read-only")
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(StoreError, match=r"cannot write the run store '.*store\.sqlite' \(.*\): resume a writable"):
            SQLiteRunStore.open(tmp_path)
        with SQLiteRunStore.open(tmp_path, readonly=True) as store:  # a reader still reads it
            assert store.run().status == "running"
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(0o644)


SLOW_TO_NAME = """
import fcntl, os, sys, time

fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)  # the lock taken, the file still naming the previous (ended) holder
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
if float(sys.argv[2]) < 5:
    os.pwrite(fd, f"pid {os.getpid()} on host {os.uname().nodename} since now".encode().ljust(200), 0)
time.sleep(600)
"""


@pytest.mark.parametrize("names_itself_after_s", [0.1, 30.0])  # 0.1: well inside HOLDER_WAIT_S (1 s)
def test_a_refused_writer_names_the_new_holder_not_the_ended_one(tmp_path, names_itself_after_s):
    """Between taking the lock and writing its line, a holder's lock file is empty or still names the run's
    previous, ended writer. A refused writer waits for the new holder's line (CI once saw "holder unknown"
    there); one that never names itself is reported as unknown, never as the ended process."""
    import subprocess
    import sys

    from na_toolkit.store.lock import LOCK_FILE, RunLock, live_holder

    folder = tmp_path / "run"
    folder.mkdir()
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / LOCK_FILE).write_text(f"pid {ended.stdout.strip()} on host {os.uname().nodename} since then")
    holder = subprocess.Popen(
        [sys.executable, "-c", SLOW_TO_NAME, str(folder / LOCK_FILE), str(names_itself_after_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError) as refused:
            RunLock(folder).acquire()
        expected = f"(pid {holder.pid} on host " if names_itself_after_s < 5 else "(holder unknown)"
        assert expected in str(refused.value)
        assert f"pid {ended.stdout.strip()} " not in str(refused.value)
        # `runs` and `report` (live_holder, no lock taken) say the same of the run, never the ended process
        seen = live_holder(folder)
        if names_itself_after_s < 5:
            assert seen is not None and seen.startswith(f"pid {holder.pid} on host ")
        else:
            assert seen == "holder unknown"
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_opening_a_foreign_sqlite_file_refuses_it_unchanged(tmp_path):
    """A file that is not a run store is refused as it was found: not switched to WAL, not written."""
    foreign = tmp_path / STORE_FILE
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not a na-toolkit run store"):
        SQLiteRunStore.open(tmp_path)
    assert foreign.read_bytes() == before
    conn = sqlite3.connect(foreign)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def _folder(path: Path) -> dict[str, tuple[int, bytes]]:
    """Each file of folder `path` by name: its modification time and bytes."""
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(path.iterdir())}


def test_a_reader_leaves_a_closed_store_the_one_file_it_found(tmp_path):
    """A finished run's folder is its store alone (copied or archived whole): reading it leaves no -wal and
    -shm behind, while a reader's close never removes those another connection still uses."""
    with SQLiteRunStore.create(tmp_path / STORE_FILE, "r", {"evaluations": 3}) as s:
        s.set_status("finished", {"best": {}})
    before = _folder(tmp_path)
    assert list(before) == [STORE_FILE]
    with SQLiteRunStore.open(tmp_path, readonly=True) as reader:
        assert reader.run().status == "finished"
    assert _folder(tmp_path) == before  # the store file untouched (its bytes and time), nothing beside it
    # two readers: the first to close leaves the files the other still reads through; the last removes them
    first = SQLiteRunStore.open(tmp_path, readonly=True)
    with SQLiteRunStore.open(tmp_path, readonly=True) as second:
        assert second.count_evaluations() == 0
    assert first.run().status == "finished" and (tmp_path / f"{STORE_FILE}-shm").exists()
    first.close()
    assert _folder(tmp_path) == before
    # a writer open beside a reader: the reader's close leaves the writer's files, the writer removes them
    writer = SQLiteRunStore.open(tmp_path)
    with SQLiteRunStore.open(tmp_path, readonly=True) as reader:
        writer.save_artifact("note", {"x": 1})
        assert reader.artifact("note") == {"x": 1}
    assert writer.artifact("note") == {"x": 1} and (tmp_path / f"{STORE_FILE}-wal").exists()
    writer.close()
    assert sorted(os.listdir(tmp_path)) == [STORE_FILE]


def test_a_reader_leaves_a_killed_writers_wal_for_the_next_writer(tmp_path):
    """A -wal holding commits (a writer killed before it folded them into the store) is read and left as it
    was, and so is the store file: a reader never writes it."""
    import shutil

    live, killed = tmp_path / "live", tmp_path / "killed"
    live.mkdir()
    killed.mkdir()
    store = SQLiteRunStore.create(live / STORE_FILE, "r", {"evaluations": 3})
    store.save_artifact("note", {"x": 1})
    for name in (STORE_FILE, f"{STORE_FILE}-wal"):  # what a kill leaves: the commit in the -wal only
        shutil.copy2(live / name, killed / name)
    store.close()
    before = _folder(killed)
    assert before[f"{STORE_FILE}-wal"][1]
    with SQLiteRunStore.open(killed, readonly=True) as reader:
        assert reader.artifact("note") == {"x": 1}
    after = _folder(killed)
    assert {k: after[k] for k in before} == before


MADE_READ_ONLY_LIVE = """
import os, subprocess, sys
from na_toolkit.errors import StoreError
from na_toolkit.store.sqlite import SQLiteRunStore

store = SQLiteRunStore.create(sys.argv[1], "r", {"evaluations": 3})
store.save_artifact("before", {"x": 1})
shm = sys.argv[1] + "-shm"
if os.geteuid() == 0:
    subprocess.run(["chattr", "+i", shm], check=True)
else:
    os.chmod(shm, 0o444)
for what in ("write", "read"):
    try:
        store.save_artifact("after", {"x": 2}) if what == "write" else store.artifact("before")
    except StoreError as exc:
        print(what, exc)
store.close()
print("closed")
"""


def _chattr_works(probe: "os.PathLike[str]") -> bool:
    """Whether root can make a file immutable here: `chattr` is installed and the filesystem takes the flag."""
    import shutil
    import subprocess

    if shutil.which("chattr") is None:
        return False
    probe.write_text("x")
    if subprocess.run(["chattr", "+i", probe], capture_output=True).returncode != 0:
        return False
    subprocess.run(["chattr", "-i", probe], check=True)
    return True


def test_a_store_whose_shm_is_made_read_only_while_open_is_a_store_error_not_sigbus(tmp_path):
    """SQLite writes the WAL index through a shared memory map of `-shm`; once that file is immutable (root's
    `chattr +i` on a live run's folder) any read, write or close ended the process with SIGBUS (exit -7). The
    store now refuses with a StoreError and keeps what was committed."""
    import subprocess
    import sys

    if os.geteuid() == 0 and not _chattr_works(tmp_path / "probe"):
        pytest.skip("root, and no working chattr +i here (none installed, or a filesystem without it, e.g. tmpfs)")
    path = tmp_path / STORE_FILE
    try:
        proc = subprocess.run(
            [sys.executable, "-c", MADE_READ_ONLY_LIVE, str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", f"{path}-shm"], check=True)
        else:
            os.chmod(f"{path}-shm", 0o644)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["write", "read", "closed"]
    assert lines[0] == (
        f"write the run store {str(path)!r} can no longer be used: its store.sqlite-shm was made read-only "
        "(chattr +i, chmod) while this process had it open, and SQLite writes to it; what it holds so far is kept: "
        "make the run folder writable again and resume the run, or resume a copy of it (`cp -r RUN COPY`, then "
        "`na-toolkit search --resume COPY` (Python: `run_search(resume=COPY)`))"
    )
    with SQLiteRunStore.open(tmp_path) as store:
        assert store.artifact("before") == {"x": 1} and store.artifact("after") is None
