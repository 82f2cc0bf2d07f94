"""Fault tests: real searches SIGKILLed at every stage of a round, concurrent resumes, then resumed to the end.

Every run is a real `na-toolkit search` subprocess on a small demo-shaped config (digits, the torch evaluator,
a pool of 2 workers). The kills are real SIGKILLs: at a chosen stage through the kill points of
store/faultpoint.py (mid-training, inside a store transaction, at the end of a round, before the result is
stored), from outside while the outputs are written, and at random times. After each kill the tagged
processes still alive 10 s later are counted (orphaned pool workers); the run is then resumed to the end
and compared with an uninterrupted reference run. Also: two resumes started at once, a resume started
during a live run, and killed resumes of a finished run (it must report exactly as before).

Figures: `lost` (evaluations stored before a kill that are gone or changed after the resume), `paid_twice`
(evaluations paid for by more than one process: what the processes paid minus the rows they left),
`damaged_runs` (finished runs whose status, result or report changed), `orphan_processes`, `mismatched_runs`
(resumed runs whose result differs from the reference), `stages_missed` (kills that did not land).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.base import STORE_FILE
from ..store.faultpoint import KILL_AT_ENV
from .base import Benchmark, at_least

if TYPE_CHECKING:
    from ..toolkit import Toolkit

#: the environment variable every process of a scenario inherits, so its leftovers can be found
TAG_ENV = "NA_TOOLKIT_FAULTS_TAG"
#: how long after a kill a process still alive counts as orphaned
ORPHAN_WAIT_S = 10.0
RUN_TIMEOUT_S = 600.0

FAULT_CONFIG = """
name = "faults"
seed_network = "simple-cnn"
dataset = "digits"
evaluations = {evaluations}
random_seed = 1
output = "runs"

[search]
per_round = 2
moves = ["scale", "remove"]

[strategy]
name = "evolution"
options = {{ population = 3, sample = 2, oversample = 2 }}

[evaluator]
name = "torch"
options = {{ epochs = 1, threads = 1 }}

[predictors]
accuracy = {{ name = "ensemble", options = {{ n_estimators = 10 }} }}

[executor]
name = "local"
options = {{ workers = {workers}, threads_per_worker = 1 }}

[budgets]
model_size_bytes = 16_000_000

[devices.cpu]
device = "cpu"
time_model = {{ name = "roofline", options = {{ device = "x86-cpu" }} }}
budgets = {{ latency_ms = 0.1 }}
"""


# ---- processes and stores ----------------------------------------------------------------------------
@dataclass
class Bench:
    """The working folder, the config, and the reference result every resumed run is compared with."""

    work: Path
    config: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    reference: dict[str, Any] | None = None

    def start(self, *args: str, kill_at: str | None = None, **popen: Any) -> subprocess.Popen[str]:
        """`na-toolkit ARGS` in this bench's folder, tagged (`orphans`); `popen`: more of Popen's options (a
        process group of its own to Ctrl-C, a `preexec_fn`)."""
        env = {**os.environ, TAG_ENV: self.tag}
        env.pop(KILL_AT_ENV, None)
        if kill_at:
            env[KILL_AT_ENV] = kill_at
        return subprocess.Popen(
            [sys.executable, "-m", "na_toolkit", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=self.work,
            **popen,
        )

    def search(self, name: str, kill_at: str | None = None) -> tuple[subprocess.Popen[str], Path]:
        out = self.work / name
        return self.start(
            "search", str(self.config), "--output", str(out), "--json", "--no-progress", kill_at=kill_at
        ), out

    def resume(self, run: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
        return self.start("search", "--resume", str(run), "--json", "--no-progress", kill_at=kill_at)

    def orphans(self) -> int:
        """Processes of this benchmark (its tag in their environment) alive ORPHAN_WAIT_S after a kill."""
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while True:
            pids = tagged_pids(self.tag)
            if not pids or time.monotonic() >= deadline:
                return len(pids)
            time.sleep(0.2)

    def cleanup(self) -> None:
        for pid in tagged_pids(self.tag):  # only this benchmark's own leftovers, by pid
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def tagged_pids(tag: str) -> list[int]:
    """Live processes whose environment holds TAG_ENV=tag (Linux /proc), other than this one."""
    needle = f"{TAG_ENV}={tag}".encode()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie has ended
                    out.append(int(entry.name))
        except OSError:
            continue
    return out


def finish(proc: subprocess.Popen[str], timeout_s: float = RUN_TIMEOUT_S) -> tuple[int, dict[str, Any] | None, str]:
    """Wait for a process: (exit code, its --json summary when it printed one, the last stderr line)."""
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    summary = None
    if proc.returncode == 0 and stdout.strip():
        try:
            summary = json.loads(stdout)
        except json.JSONDecodeError:
            summary = None
    lines = [line for line in stderr.splitlines() if line.strip()]
    return proc.returncode, summary, lines[-1] if lines else ""


def run_folder(out: Path) -> Path | None:
    found = sorted(out.glob(f"*/{STORE_FILE}"))
    return found[0].parent if found else None


def stored_rows(run: Path | None) -> list[tuple[Any, ...]]:
    """The run's evaluations as stored (seq, hash, metrics, error), read-only."""
    if run is None or not (run / STORE_FILE).is_file():
        return []
    conn = sqlite3.connect(f"{(run / STORE_FILE).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT seq, arch_hash, metrics_json, error FROM evaluations ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # killed while the schema was made
        return []
    finally:
        conn.close()


def stored_run(run: Path) -> tuple[str, str | None]:
    """(status, result JSON) of the run as stored."""
    conn = sqlite3.connect(f"{(run / STORE_FILE).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        status, result = conn.execute("SELECT status, result_json FROM runs").fetchone()
        return status, result
    finally:
        conn.close()


def outcome(summary: dict[str, Any]) -> dict[str, Any]:
    """What must equal the reference: every evaluation (hash, metrics, error) in order, the Pareto set, the
    best per device. Wall-clock metrics (`train_time_s`) are left out: a clock reads differently each run."""

    def metrics(e: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in e["metrics"].items() if not k.endswith("_s")}

    return {
        "evaluated": [(e["arch_hash"], metrics(e), e["error"]) for e in summary["evaluated"]],
        "pareto": [e["arch_hash"] for e in summary["pareto"]],
        "best": {d: (e or {}).get("arch_hash") for d, e in summary["best"].items()},
    }


# ---- scenarios ---------------------------------------------------------------------------------------
def _resume_and_check(b: Bench, run: Path | None, at_kill: list[tuple[Any, ...]], paid_by_killed: int) -> dict:
    """Resume a killed run to the end; what was lost, paid twice, and whether it matches the reference."""
    if run is None:  # killed before its store existed: nothing to resume, nothing lost
        return {"resumed": False, "lost": 0, "paid_twice": 0, "matches_reference": True}
    rc, summary, err = finish(b.resume(run))
    after = stored_rows(run)
    kept = set(after)
    lost = sum(1 for row in at_kill if row not in kept)
    paid = paid_by_killed + (
        summary["counters"]["evaluations"] - summary["counters"]["evaluations_replayed"] if summary else 0
    )
    matches = summary is not None and b.reference is not None and outcome(summary) == b.reference
    return {
        "resumed": rc == 0,
        "resume_error": None if rc == 0 else err,
        "lost": lost,
        "paid_twice": max(0, paid - len(after)),
        "matches_reference": matches,
    }


def kill_scenario(b: Bench, name: str, kill_at: str | None = None, when: Callable[[Path], bool] | None = None) -> dict:
    """Start a run, kill it at `kill_at` (a kill point) or from outside once `when(output folder)` holds,
    count the orphans, resume, compare."""
    proc, out = b.search(name, kill_at=kill_at)
    if when is not None:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline and not when(out):
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    rc, _summary, err = finish(proc)
    killed = rc == -signal.SIGKILL
    orphans = b.orphans() if killed else 0
    run = run_folder(out)
    at_kill = stored_rows(run)
    status = stored_run(run)[0] if run else None
    detail = {
        "stage": kill_at or "external",
        "killed": killed,
        "error": None if killed else err,
        "evaluations_at_kill": len(at_kill),
        "status_at_kill": status,
        "summary_json_at_kill": bool(run and (run / "summary.json").exists()),
        "orphan_processes": orphans,
    }
    detail.update(_resume_and_check(b, run, at_kill, len(at_kill)))
    return detail


def two_resumes_at_once(b: Bench) -> dict:
    """A run killed after its first round, then two resumes started together: one writes, one is refused."""
    proc, out = b.search("two-resumes", kill_at="checkpoint:2")
    rc, _, _ = finish(proc)
    orphans = b.orphans()
    run = run_folder(out)
    at_kill = stored_rows(run)
    assert run is not None
    first, second = b.resume(run), b.resume(run)
    results = [finish(first), finish(second)]
    after = stored_rows(run)
    kept = set(after)
    paid = len(at_kill) + sum(
        s["counters"]["evaluations"] - s["counters"]["evaluations_replayed"] for _, s, _ in results if s
    )
    winners = [s for rc_, s, _ in results if rc_ == 0 and s]
    refused = [err for rc_, _, err in results if rc_ != 0]
    return {
        "killed": rc == -signal.SIGKILL,
        "evaluations_at_kill": len(at_kill),
        "exit_codes": [r[0] for r in results],
        "refused": refused,
        "orphan_processes": orphans,
        "lost": sum(1 for row in at_kill if row not in kept),
        "paid_twice": max(0, paid - len(after)),
        "matches_reference": bool(winners) and all(outcome(s) == b.reference for s in winners),
    }


def resume_during_live_run(b: Bench) -> dict:
    """A resume started while the run is still going is refused; the live run finishes as the reference.
    The live run is paused (SIGSTOP) from its second stored evaluation until the resume has ended, so the
    scenario does not depend on which process is faster (a resume that starts slowly would otherwise find the
    run finished, and rightly replay it); a paused holder keeps its lock, as a busy one does."""
    proc, out = b.search("live")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline and len(stored_rows(run_folder(out))) < 2:
        time.sleep(0.05)
    run = run_folder(out)
    assert run is not None
    paused = proc.poll() is None
    if paused:
        os.kill(proc.pid, signal.SIGSTOP)
    try:
        rc2, summary2, err2 = finish(b.resume(run))
    finally:
        if paused:
            os.kill(proc.pid, signal.SIGCONT)
    rc, summary, err = finish(proc)
    status = stored_run(run)[0]
    matches = summary is not None and outcome(summary) == b.reference
    paid = (summary["counters"]["evaluations"] if summary else 0) + (
        summary2["counters"]["evaluations"] - summary2["counters"]["evaluations_replayed"] if summary2 else 0
    )
    return {
        "resume_exit_code": rc2,
        "resume_message": err2,
        "live_exit_code": rc,
        "live_error": None if rc == 0 else err,
        "status": status,
        "damaged": rc != 0 or status != "finished" or not matches,
        "paid_twice": max(0, paid - len(stored_rows(run))),
        "matches_reference": matches,
    }


def killed_resume_of_finished(b: Bench, finished: Path, name: str, kill_at: str | None, when: str | None) -> dict:
    """A copy of a finished run, resumed and killed (at `kill_at`, or once the file `when` is rewritten):
    its stored status and result, and its report, must be exactly as before the resume."""
    run = b.work / name
    shutil.copytree(finished, run)
    before = stored_run(run)
    rc0, report_before, _ = _report(b, run)
    proc = b.resume(run, kill_at=kill_at)
    if when is not None:
        target = run / when
        mtime = target.stat().st_mtime_ns if target.exists() else 0
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if target.exists() and target.stat().st_mtime_ns != mtime:
                break
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    rc, _, err = finish(proc)
    orphans = b.orphans() if rc == -signal.SIGKILL else 0
    after = stored_run(run)
    rc1, report_after, report_err = _report(b, run)
    damaged = after != before or rc1 != 0 or report_after != report_before
    detail = {
        "stage": kill_at or f"external (after {when} was rewritten)",
        "killed": rc == -signal.SIGKILL,
        "error": None if rc == -signal.SIGKILL else err,
        "status_after_kill": after[0],
        "result_unchanged": after == before,
        "report_unchanged": rc1 == 0 and report_after == report_before,
        "report_error": None if rc1 == 0 else report_err,
        "damaged": damaged,
        "orphan_processes": orphans,
    }
    detail.update(_resume_and_check(b, run, stored_rows(run), 0))
    return detail


def _report(b: Bench, run: Path) -> tuple[int, dict[str, Any] | None, str]:
    rc, summary, err = finish(b.start("report", str(run), "--json"))
    return rc, summary, err


def random_kill(b: Bench, i: int, rng: random.Random, span_s: float) -> dict:
    """A kill at a random time of the run; the stage it hit is read from what the run left."""
    delay_s = rng.uniform(0.5, span_s)
    proc, out = b.search(f"random-{i}")
    start = time.monotonic()
    detail = kill_scenario_external(b, proc, out, lambda: time.monotonic() - start >= delay_s)
    detail["kill_after_s"] = round(delay_s, 2)
    return detail


def kill_scenario_external(b: Bench, proc: subprocess.Popen[str], out: Path, now: Callable[[], bool]) -> dict:
    while proc.poll() is None and not now():
        time.sleep(0.01)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    rc, _, err = finish(proc)
    killed = rc == -signal.SIGKILL
    orphans = b.orphans() if killed else 0
    run = run_folder(out)
    at_kill = stored_rows(run)
    status = stored_run(run)[0] if run else None
    hit = (
        "finished before the kill"
        if not killed
        else "before the store"
        if run is None
        else "outputs"
        if status == "running" and (run / "best").exists()
        else f"round with {len(at_kill)} evaluations stored"
    )
    detail = {"killed": killed, "stage_hit": hit, "evaluations_at_kill": len(at_kill), "orphan_processes": orphans}
    detail.update(_resume_and_check(b, run, at_kill, len(at_kill)))
    return detail


# ---- the benchmark -----------------------------------------------------------------------------------
def _outputs_started(out: Path) -> bool:
    run = run_folder(out)
    return run is not None and (run / "best").exists()


#: name → kill point of the kill scenarios (None: killed from outside while the outputs are written)
KILLS: dict[str, str | None] = {
    "mid_training": "evaluate:2:0.05",  # 50 ms into round 1: its 2 evaluations are running on warm workers
    "in_transaction_early": "transaction:5",
    "in_transaction_late": "transaction:14",
    "end_of_round": "checkpoint:3",
    "during_outputs": None,
    "before_result_stored": "finish:1",
}


def make_bench(work: Path, evaluations: int = 6, workers: int = 2) -> Bench:
    """A working folder with the fault config, and the reference run in it (`bench.reference`)."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "faults.toml"
    config.write_text(FAULT_CONFIG.format(evaluations=evaluations, workers=workers))
    return Bench(work, config)


def run_reference(b: Bench) -> tuple[Path, float]:
    """The uninterrupted run every resumed one must equal; (its run folder, its wall time in s)."""
    start = time.monotonic()
    proc, out = b.search("reference")
    rc, summary, err = finish(proc)
    if rc != 0 or summary is None:
        raise RuntimeError(f"the reference search failed ({rc}): {err}")
    b.reference = outcome(summary)
    run = run_folder(out)
    assert run is not None
    return run, time.monotonic() - start


def run_faults(work: Path, evaluations: int = 6, workers: int = 2, random_kills: int = 2, seed: int = 0) -> dict:
    b = make_bench(work, evaluations, workers)
    try:
        reference_run, wall_s = run_reference(b)
        scenarios: dict[str, dict[str, Any]] = {}
        for name, kill_at in KILLS.items():
            scenarios[name] = kill_scenario(b, name, kill_at, None if kill_at else _outputs_started)
        scenarios["two_resumes_at_once"] = two_resumes_at_once(b)
        scenarios["resume_during_live_run"] = resume_during_live_run(b)
        scenarios["killed_resume_of_finished_mid_replay"] = killed_resume_of_finished(
            b, reference_run, "finished-replay", "checkpoint:2", None
        )
        scenarios["killed_resume_of_finished_mid_outputs"] = killed_resume_of_finished(
            b, reference_run, "finished-outputs", None, "best/cpu/model.onnx"
        )
        rng = random.Random(seed)
        for i in range(random_kills):
            scenarios[f"random_kill_{i}"] = random_kill(b, i, rng, wall_s)
    finally:
        b.cleanup()
    kills = [s for s in scenarios.values() if "killed" in s]
    return {
        "lost": sum(s.get("lost", 0) for s in scenarios.values()),
        "paid_twice": sum(s.get("paid_twice", 0) for s in scenarios.values()),
        "damaged_runs": sum(bool(s.get("damaged")) for s in scenarios.values()),
        "orphan_processes": sum(s.get("orphan_processes", 0) for s in scenarios.values()),
        "mismatched_runs": sum(not s.get("matches_reference", True) for s in scenarios.values()),
        "stages_missed": sum(not s["killed"] for s in kills if "stage" in s),
        "kills": sum(bool(s["killed"]) for s in kills),
        "reference_wall_s": round(wall_s, 1),
        "scenarios": scenarios,
    }


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--evaluations", type=at_least(1), default=6, help="evaluations per run (default %(default)s)")
    p.add_argument("--workers", type=at_least(1), default=2, help="pool workers per run (default %(default)s)")
    p.add_argument(
        "--random-kills", type=at_least(0), default=2, help="runs killed at random times (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random kill times (default %(default)s)")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    if args.keep:
        return run_faults(Path(args.keep), args.evaluations, args.workers, args.random_kills, args.seed)
    with tempfile.TemporaryDirectory(prefix="na-faults-") as tmp:
        return run_faults(Path(tmp), args.evaluations, args.workers, args.random_kills, args.seed)


BENCHMARK = Benchmark("faults", (__doc__ or "").strip().splitlines()[0], configure, run)
