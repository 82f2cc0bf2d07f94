"""Ctrl-C and SIGTERM of a real `na-toolkit search` with a pool of 2 workers (the torch evaluator, as a user
runs it): one clean message and the resume hint, no worker traceback, no worker left behind, the run marked
interrupted; and the SIGTERM handler is the CLI's alone, never installed by the library."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import interruptible
from na_toolkit.bench import faults as F
from na_toolkit.cli.main import main
from na_toolkit.search.executor_local import WORKER_EXIT_S, LocalExecutor
from na_toolkit.search.executors import Task
from na_toolkit.search.loop import run_search

#: the slowest a driver may take from the signal to its exit (its pool ended, its store marked)
EXIT_S = 20.0


def _start_search(work: Path) -> tuple[subprocess.Popen[str], Path, F.Bench]:
    """A search (evaluations = 30, never finished here) in its own process group, as a terminal starts
    it; returns once it stored its first evaluation and its workers train the next ones."""
    bench = F.make_bench(work, evaluations=30, workers=2)
    out = work / "runs"
    proc = bench.start(
        "search",
        str(bench.config),
        "--output",
        str(out),
        "--no-progress",
        start_new_session=True,
        preexec_fn=interruptible,  # a test session run in the background would hand it an ignored SIGINT
    )
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not F.stored_rows(F.run_folder(out)):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    time.sleep(0.5)  # the next round's tasks are on the workers
    return proc, out, bench


def _worker_pids(driver: int) -> list[int]:
    """The pids of the driver's pool workers (its child processes started by multiprocessing)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            if stat and int(stat.rsplit(")", 1)[1].split()[1]) == driver:
                if b"spawn_main" in (entry / "cmdline").read_bytes():  # not its resource tracker
                    pids.append(int(entry.name))
        except OSError:
            continue
    assert pids, f"the search {driver} has no pool worker"
    return sorted(pids)


def _ended(proc: subprocess.Popen[str], bench: F.Bench) -> tuple[int, str, float]:
    """(exit status, stderr, seconds to exit) of the signalled search; its workers must be gone with it."""
    start = time.monotonic()
    try:
        _, err = proc.communicate(timeout=EXIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        bench.cleanup()
        pytest.fail(f"the search did not end within {EXIT_S} s of the signal")
    took = time.monotonic() - start
    left = bench.orphans()  # polled, not slept: a loaded machine takes its time to reap the workers
    bench.cleanup()
    assert not left, f"{left} processes outlived the search"
    return proc.returncode, err, took


def _assert_clean(err: str, last: str, out: Path) -> int:
    """One message line and the resume hint, nothing from a worker; returns the evaluations kept."""
    for noise in ("Traceback", "SpawnProcess", "KeyboardInterrupt", "leaked"):
        assert noise not in err, err
    lines = err.strip().splitlines()
    assert lines[-1] == f"na-toolkit: {last}", err
    run = F.run_folder(out)
    assert run is not None
    kept = len(F.stored_rows(run))
    assert (
        kept >= 1
        and (
            f"na-toolkit: the run keeps its {kept} evaluation{'s' * (kept != 1)}; continue it with "
            f"`na-toolkit search --resume {run}` (Python: `run_search(resume={str(run)!r})`)"
        )
        in lines[-2]
    ), err
    assert F.stored_run(run)[0] == "running"  # what `runs` shows as interrupted: no live writer
    return kept


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_ends_the_pool_without_a_worker_traceback(tmp_path):
    proc, out, bench = _start_search(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group gets it
    rc, err, took = _ended(proc, bench)
    assert rc == 130 and took < EXIT_S, err
    _assert_clean(err, "interrupted", out)


@pytest.mark.slow
@pytest.mark.parametrize("second", ["cleaning-up", "exiting"])
def test_a_second_ctrl_c_while_stopping_still_ends_cleanly_with_130(tmp_path, second):
    """An impatient second Ctrl-C, while the search cleans up after the first or as the process exits after
    printing `interrupted`, changes nothing: exit 130 (not death by SIGINT), the resume hint, the run kept."""
    proc, out, bench = _start_search(tmp_path)
    assert proc.stderr is not None
    if second == "cleaning-up":
        # a worker stuck where no signal reaches it (stopped): the clean-up waits out the grace period for it
        # before its SIGKILL, so the second Ctrl-C, a second later, lands inside the clean-up whatever the load
        # (a fixed 20 ms once raced a clean-up that had already ended, or two Ctrl-Cs the driver saw as one)
        stuck = _worker_pids(proc.pid)[0]
        os.kill(stuck, signal.SIGSTOP)
    os.killpg(proc.pid, signal.SIGINT)
    if second == "cleaning-up":
        time.sleep(1.0)
        assert proc.poll() is None, "the search ended before its stopped worker's grace period"
    else:
        read = ""  # what the search said up to its `interrupted`: a failure shows it (once, rc 2 and nothing)
        while (line := proc.stderr.readline()) and line.strip() != "na-toolkit: interrupted":
            read += line
        assert line, f"the search ended without `na-toolkit: interrupted` (exit {proc.wait(timeout=EXIT_S)}): {read!r}"
    os.killpg(proc.pid, signal.SIGINT)
    rc, err, took = _ended(proc, bench)
    assert rc == 130, err
    if second == "cleaning-up":
        assert f"na-toolkit: stopping, one moment (kill -9 {proc.pid} ends it now)" in err
        _assert_clean(err, "interrupted", out)
    else:
        # the second Ctrl-C lands before or after the CLI leaves its stopping mode: said once, or ignored
        said = f"na-toolkit: stopping, one moment (kill -9 {proc.pid} ends it now)\n"
        assert err in ("", said) and F.stored_run(F.run_folder(out))[0] == "running", err


@pytest.mark.slow
def test_sigterm_ends_a_search_as_ctrl_c_does_and_runs_lists_it_interrupted(tmp_path):
    proc, out, bench = _start_search(tmp_path)
    os.kill(proc.pid, signal.SIGTERM)  # `kill PID`: the driver alone; it ends its workers itself
    rc, err, took = _ended(proc, bench)
    assert rc == 143 and took < EXIT_S, err
    kept = _assert_clean(err, "terminated", out)
    run = F.run_folder(out)
    assert run is not None
    accuracies = [json.loads(m)["accuracy"] for _, _, m, e in F.stored_rows(run) if e is None]
    # `runs` lists it interrupted, with the best accuracy it evaluated so far
    res = subprocess.run(
        [sys.executable, "-m", "na_toolkit", "runs", str(out), "--json"], capture_output=True, text=True, timeout=120
    )
    (row,) = json.loads(res.stdout)["runs"]
    assert row["status"] == "interrupted" and row["evaluations"] == kept
    assert row["best_so_far"]["accuracy"] == max(accuracies)
    res = subprocess.run(
        [sys.executable, "-m", "na_toolkit", "runs", str(run)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert f"{100 * max(accuracies):.2f}% (so far)" in res.stdout and "interrupted" in res.stdout


def _busy_pool(toolkit, seconds: float, workers: int = 2, **options) -> tuple[LocalExecutor, list[int], list]:
    """A pool of `workers` workers each running a task of `seconds` (the synthetic evaluator): the executor,
    its tickets, and its worker processes (the children this process has, through the public API)."""
    arch = toolkit.seed("simple-cnn")
    task = Task("evaluate", arch.to_json(), "synthetic", {"seconds": seconds}, selection=toolkit.selection.to_json())
    ex = LocalExecutor(workers=workers, threads_per_worker=1, **options)
    ex.toolkit = toolkit
    before = set(multiprocessing.active_children())
    tickets = [ex.submit(task) for _ in range(workers)]
    # in the order they started (pids rise): a pool notices the death of a worker it started last only at its
    # next event (CPython's pool waits on the workers it had when a submit woke it), so the tests kill the first
    procs = sorted((p for p in multiprocessing.active_children() if p not in before), key=lambda p: p.pid)
    assert len(procs) == workers and all(p.is_alive() for p in procs)
    deadline = time.monotonic() + 120  # a worker imports the toolkit first: seconds on a loaded machine
    while not all(_handles_sigterm(p.pid) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # started: the workers have their tasks
    return ex, tickets, procs


def _handles_sigterm(pid: int) -> bool:
    """Whether the worker `pid` has started (its SIGTERM handler is set: the kernel's caught-signal mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _reaped(pid: int) -> bool:
    """Whether the child `pid` is gone and reaped (no zombie left)."""
    return not Path(f"/proc/{pid}").exists()


def test_closing_a_pool_with_tasks_still_running_ends_its_workers_at_once(toolkit):
    """A search that stops (Ctrl-C, an error) abandons its running tasks: its workers, which ignore Ctrl-C,
    are ended, not waited for (a training may take minutes)."""
    ex, tickets, workers = _busy_pool(toolkit, 120.0)
    start = time.monotonic()
    ex.close()
    assert time.monotonic() - start < WORKER_EXIT_S + 2 and tickets
    assert not any(p.is_alive() for p in workers)
    assert all(p.exitcode == 128 + signal.SIGTERM for p in workers)  # ended by their SIGTERM handler
    assert all(_reaped(p.pid) for p in workers)


@pytest.mark.parametrize("busy", [True, False])
def test_closing_a_pool_with_a_hung_worker_kills_it_instead_of_hanging(toolkit, busy):
    """A worker that does not end when asked (stopped, or stuck in native code where its SIGTERM handler never
    runs) is killed after the grace period: close returns, nothing is left running or unreaped, whether the
    worker hung mid-task or idle (a close with no task left used to wait for it forever)."""
    ex, tickets, workers = _busy_pool(toolkit, 120.0 if busy else 0.5)
    if not busy:
        done = dict(ex.wait(tickets))
        while len(done) < len(tickets):
            done.update(ex.wait([t for t in tickets if t not in done]))
    hung, fine = workers
    os.kill(hung.pid, signal.SIGSTOP)
    closing = threading.Thread(target=ex.close, daemon=True)
    start = time.monotonic()
    closing.start()
    closing.join(3 * WORKER_EXIT_S + 10)
    took = time.monotonic() - start
    if closing.is_alive():
        os.kill(hung.pid, signal.SIGKILL)
        closing.join(30)
        pytest.fail(f"close hung on a stopped worker ({took:.0f} s)")
    assert took < 2 * WORKER_EXIT_S + 5, took
    assert hung.exitcode == -signal.SIGKILL
    # busy: ended by its SIGTERM; idle: it leaves on its own, or is ended when the stopped worker holds the
    # pool's queue lock it waits on
    assert fine.exitcode in ((128 + signal.SIGTERM,) if busy else (0, 128 + signal.SIGTERM))
    assert all(_reaped(p.pid) for p in workers)


def test_the_death_of_the_last_started_worker_is_seen_while_the_other_worker_runs_on(toolkit):
    """CPython's pool watches the workers it had when a submit last woke it: the worker started last, killed
    (the out-of-memory killer) while the other one runs a long task, went unseen until that task ended, and a
    search waiting on the dead worker's task alone would wait forever. The executor sees it within seconds."""
    ex, tickets, workers = _busy_pool(toolkit, 120.0, max_retries=0)
    try:
        os.kill(workers[-1].pid, signal.SIGKILL)
        start = time.monotonic()
        done = dict(ex.wait(tickets))
        took = time.monotonic() - start
    finally:
        ex.close()
    assert took < 30, took
    assert any(r.error and "killed by SIGKILL" in r.error for r in done.values()), done
    assert not multiprocessing.active_children() and all(_reaped(p.pid) for p in workers)


def test_the_sigterm_handler_is_the_clis_only_while_it_runs(tmp_path):
    """The library installs no signal handler in its host; `main()` sets its own for SIGTERM while it runs
    and puts back the one it found."""
    host = "import signal, na_toolkit.search, na_toolkit.cli.main; print(signal.getsignal(signal.SIGTERM))"
    res = subprocess.run([sys.executable, "-c", host], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == str(signal.SIG_DFL), res.stderr

    def host_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, host_handler)
    try:
        assert main(["runs", str(tmp_path)]) == 0
        assert signal.getsignal(signal.SIGTERM) is host_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("max_retries", [1, 0])
def test_a_worker_killed_mid_task_is_a_warning_naming_how_it_died(toolkit, caplog, max_retries):
    """A worker the out-of-memory killer ends (SIGKILL) is said as it happens, on stderr and in the log file
    (the task runs again on a fresh pool), and a task it fails names how it died."""
    ex, tickets, workers = _busy_pool(toolkit, 3.0, max_retries=max_retries)
    try:
        os.kill(workers[0].pid, signal.SIGKILL)
        with caplog.at_level("WARNING", logger="na_toolkit.search"):
            done = dict(ex.wait(tickets))
            while len(done) < 2:
                done.update(ex.wait([t for t in tickets if t not in done]))
    finally:
        ex.close()
    # the dead worker and every worker of both pools are gone and reaped once closed
    assert not multiprocessing.active_children() and all(_reaped(p.pid) for p in workers)
    died = "killed by SIGKILL: the out-of-memory killer, or kill -9"
    # only the dead worker's task is charged a retry: the other worker's, which the pool's end interrupted,
    # runs again uncharged (both were charged, and with max_retries = 0 both failed for good)
    if max_retries:
        assert all(r.error is None for r in done.values()) and (ex.retries, ex.resubmitted) == (1, 1)
        assert (
            f"a worker process died ({died}); 1 task(s) it ran run again on a fresh pool (retry 1); 1 other "
            "task(s) its end interrupted run again, not charged a retry"
        ) in caplog.text
    else:
        errors = sorted(str(r.error) for r in done.values())
        assert errors == ["None", f"worker process died 1 times running this task (last: {died})"]
        assert (ex.retries, ex.resubmitted) == (0, 1)


def test_a_worker_that_dies_idle_is_replaced_when_the_next_task_comes(toolkit, caplog):
    """A worker killed between tasks (while the driver measures, say) broke the pool, and the next submit's
    BrokenProcessPool ended the search with a traceback; the next task now runs on a fresh pool, charged
    nothing."""
    ex, tickets, workers = _busy_pool(toolkit, 0.2, max_retries=0)
    try:
        done = dict(ex.wait(tickets))
        while len(done) < len(tickets):
            done.update(ex.wait([t for t in tickets if t not in done]))
        os.kill(workers[0].pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[0].exitcode is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the pool's own thread sees it
        arch = toolkit.seed("simple-cnn")
        task = Task("evaluate", arch.to_json(), "synthetic", {}, selection=toolkit.selection.to_json())
        with caplog.at_level("WARNING", logger="na_toolkit.search"):
            again = [ex.submit(task) for _ in range(2)]
            got = dict(ex.wait(again))
            while len(got) < 2:
                got.update(ex.wait([t for t in again if t not in got]))
    finally:
        ex.close()
    assert all(r.ok for r in got.values()) and ex.retries == 0
    assert "a worker process died (killed by SIGKILL" in caplog.text


@pytest.mark.parametrize("workers", [2, 1])
def test_an_evaluation_past_task_timeout_s_is_ended_and_recorded_as_failed(toolkit, workers):
    """A hanging evaluation stalled a search forever, with no message; with `task_timeout_s` its worker is
    killed and the task recorded as failed (never run again), while a quick task beside it is unharmed. With
    one worker the tasks then run in a worker process, which can be ended."""
    arch = toolkit.seed("simple-cnn")

    def task(seconds: float) -> Task:
        return Task(
            "evaluate", arch.to_json(), "synthetic", {"seconds": seconds}, selection=toolkit.selection.to_json()
        )

    ex = LocalExecutor(workers=workers, threads_per_worker=1, task_timeout_s=3.0)
    ex.toolkit = toolkit
    start = time.monotonic()
    try:
        tickets = [ex.submit(task(600.0)), ex.submit(task(0.1))]
        done = dict(ex.wait(tickets))
        while len(done) < 2:
            done.update(ex.wait([t for t in tickets if t not in done]))
    finally:
        ex.close()
    assert time.monotonic() - start < 120  # not the 600 s the hanging one would take
    hung, quick = done[tickets[0]], done[tickets[1]]
    assert hung.error is not None and hung.error.startswith("timed out: ended after ")
    assert "over executor.options.task_timeout_s = 3 (its worker was killed)" in hung.error
    assert quick.ok and ex.retries == 0
    assert not multiprocessing.active_children()


def test_a_worker_that_died_in_a_search_is_in_its_warnings(tmp_path):
    """A worker's death was said on stderr only; the run's summary.json and report.md now keep it too."""
    import worker_exit_plugin
    from na_toolkit.plugins import load_toolkit

    tk = load_toolkit(extra_plugins=(worker_exit_plugin,))
    doc = {
        "name": "exits",
        "seed_network": "simple-cnn",
        "evaluations": 4,
        "output": str(tmp_path / "runs"),
        "search": {"per_round": 2, "moves": ["scale"]},
        "strategy": {"name": "random"},
        "evaluator": {"name": "exits-once", "options": {"marker": str(tmp_path)}},
        "executor": {"name": "local", "options": {"workers": 2, "threads_per_worker": 1}},
        "devices": {"cpu": {"time_model": {"name": "roofline", "options": {"device": "x86-cpu"}}}},
    }
    result = run_search(doc, toolkit=tk, progress=False)
    assert result.counters.failed_evaluations == 0 and len(result.evaluated) == 4  # the task ran again
    died = [w for w in result.warnings if w.startswith("a worker process died (exit status 3)")]
    assert len(died) == 1 and "1 task(s) it ran run again on a fresh pool (retry 1)" in died[0]
    assert died[0] in (result.run_dir / "report.md").read_text()
