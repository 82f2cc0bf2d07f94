"""Fuzzing of every file the CLI reads: malformed inputs, derived from real files, through the real CLI.

For each input kind (`--kinds`, default all): `--cases` mutations of a valid file the CLI itself wrote in a
setup step (an architecture JSON and an ONNX model from `arch export/import`, a NAS-Bench-201 search config
and the run store its search wrote, a shipped hardware model, a small profile from `profile`, a saved
predictor and its training data from `predict fit`), each given to the command that reads it (`arch show/export/import`,
`search`, `search --resume`, `report`, `export`, `hw show`, `profile --resume`, a search with a `learned`
time model of the profile, `predict`, `predict fit --data`). Kinds: fuzz_kinds.py; mutations: fuzz_cases.py.
Outcomes:
- clean error: exit 2, one `na-toolkit: error:` line, no traceback;
- traceback: an exception escaped the CLI, or it died, or exited other than 0/2, or wrote a traceback or a
  message of several lines;
- hang: no answer within `--timeout-s`;
- wrong accept: exit 0 on an input invalid by construction (`schema_version = true`, an input shape of
  1x1e9x1e9, ONNX kernel_shape [5,5] over 3x3 weights, a truncated JSON document...);
- accepted valid: exit 0 on a mutation that may have left the file valid.

The CLI runs in long-lived worker processes (`--workers`), each calling the CLI's `main(argv)` in-process
per case with stdout/stderr captured and an alarm at the timeout; a worker that hangs past it or dies is
killed and replaced. Figures: `cases_min_per_kind`, `tracebacks`, `hangs`, `wrong_accepts` (totals) and per
kind under `kinds` with up to `--examples` failures each.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Benchmark
from .fuzz_kinds import KINDS, FuzzKind

if TYPE_CHECKING:
    from ..toolkit import Toolkit

#: the worker's program: the CLI's own main, served case by case (an entry point, like `python -m na_toolkit`)
WORKER_PROGRAM = (
    "import sys; from na_toolkit.bench.fuzz import serve; from na_toolkit.cli.main import main; "
    "serve(main, int(sys.argv[1]))"
)
#: address space of a worker: a case that allocates tens of GiB fails there instead of swapping the machine
WORKER_MEMORY_BYTES = 8 * 2**30
#: seconds a worker may take to start and answer its first case, on top of the case's timeout
WORKER_START_S = 60.0
#: heavy libraries the commands import lazily, imported by a worker before its first case
WARM_MODULES = ("torch", "onnx", "onnxruntime", "sklearn.ensemble", "sklearn.linear_model", "matplotlib.pyplot")
OUTCOMES = ("clean_errors", "tracebacks", "hangs", "wrong_accepts", "accepted_valid")


class _Timeout(BaseException):
    """The alarm of a case that ran past its timeout (a BaseException: `except Exception` must not eat it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


def serve(main: Callable[[list[str]], int], reply_fd: int) -> None:
    """The worker loop: one JSON request per line on stdin ({"argv", "cwd", "timeout_s"}), one JSON reply
    per line on `reply_fd` ({"rc", "stderr", "exception", "timeout", "elapsed_s"}). Exits after a timeout:
    what the interrupted command held (threads, locks) is not worth trusting."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    signal.signal(signal.SIGALRM, _alarm)
    # warm up before the first case: imports and the toolkit's load must not count against its timeout
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["arch", "show", "simple-cnn", "--json"])
        for module in WARM_MODULES:
            with contextlib.suppress(ImportError):
                __import__(module)
    reply = os.fdopen(reply_fd, "w", buffering=1)
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request["cwd"])
        out, err = io.StringIO(), io.StringIO()
        rc: int | None = None
        exception, timed_out = None, False
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, float(request["timeout_s"]))
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = int(main(list(request["argv"])))
        except _Timeout:
            timed_out = True
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            exception = traceback.format_exc(limit=-8)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        elapsed = time.perf_counter() - t
        text = err.getvalue()  # its start and its end: a long message must not hide its own prefix
        stderr = text if len(text) <= 6000 else f"{text[:3000]} [... {len(text) - 6000} characters ...] {text[-3000:]}"
        answer = {"rc": rc, "stderr": stderr, "exception": exception, "timeout": timed_out}
        if request.get("stdout"):
            answer["stdout"] = out.getvalue()
        reply.write(json.dumps({**answer, "elapsed_s": elapsed}) + "\n")
        if timed_out:
            return


class Worker:
    """A worker process serving the CLI; replaced when it hangs or dies."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.reply: Any = None
        self.started = False

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER_PROGRAM, str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,),
            start_new_session=True,  # its own process group: a hang is killed with whatever it started
        )
        os.close(write_fd)
        self.reply = os.fdopen(read_fd, "r")
        self.started = False

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.reply.close()
            self.proc = None

    def run(self, argv: list[str], cwd: Path, timeout_s: float, stdout: bool = False) -> dict[str, Any]:
        """The worker's reply, or {"timeout": True} / {"died": ...} when it had to be replaced; with `stdout`
        it holds what the command printed."""
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        request = {"argv": argv, "cwd": str(cwd), "timeout_s": timeout_s, "stdout": stdout}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        wait_s = timeout_s + 10.0 + (0.0 if self.started else WORKER_START_S)
        ready, _, _ = select.select([self.reply], [], [], wait_s)
        line = self.reply.readline() if ready else ""
        if not line:
            status = self.proc.poll()
            self.stop()
            if status is None:
                return {"timeout": True, "rc": None, "stderr": "", "exception": None}
            return {"died": f"worker died with status {status}", "rc": None, "stderr": "", "exception": None}
        self.started = True
        answer: dict[str, Any] = json.loads(line)
        if answer.get("timeout"):
            self.stop()
        return answer


def classify(answer: dict[str, Any], invalid: bool) -> tuple[str, str]:
    """(outcome, why) of one case's answer."""
    if answer.get("timeout"):
        return "hangs", "no answer within the timeout"
    if answer.get("died"):
        return "tracebacks", str(answer["died"])
    if answer.get("exception"):
        lines = str(answer["exception"]).strip().splitlines()
        where = [s.strip() for s in lines if s.strip().startswith("File ")][-1:]
        return "tracebacks", " | ".join([lines[-1][:300], *where])
    stderr: str = answer.get("stderr") or ""
    if "Traceback (most recent call last)" in stderr:
        return "tracebacks", "traceback on stderr"
    rc = answer.get("rc")
    if rc == 0:
        return ("wrong_accepts", "exit 0") if invalid else ("accepted_valid", "")
    if rc != 2:
        return "tracebacks", f"exit status {rc}"
    lines = stderr.splitlines()
    errors = [i for i, s in enumerate(lines) if s.startswith("na-toolkit: error:")]
    if len(errors) != 1:
        return "tracebacks", f"{len(errors)} error lines on stderr: {stderr[-300:]!r}"
    after = lines[errors[0] + 1 :]
    if any(not s.startswith("na-toolkit:") for s in after):
        return "tracebacks", f"an error message of several lines: {stderr[-300:]!r}"
    return "clean_errors", ""


@dataclass
class KindResult:
    command: str
    cases: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    known_invalid: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "cases": self.cases,
            **{k: self.counts[k] for k in OUTCOMES},
            "known_invalid": self.known_invalid,
            "cli_s": round(self.elapsed_s, 2),
            "examples": self.examples,
        }


def _setup_runner(worker: Worker, folder: Path) -> Callable[[list[str]], str]:
    """Runs a setup command of a kind (writing its valid files) and gives its stdout; it must succeed."""

    def cli(argv: list[str]) -> str:
        answer = worker.run(argv, folder, 600.0, stdout=True)
        if answer.get("rc") != 0:
            why = answer.get("exception") or answer.get("stderr") or answer
            raise RuntimeError(f"fuzz setup `na-toolkit {' '.join(argv)}` failed: {why}")
        return str(answer.get("stdout", ""))

    return cli


def run_fuzz(
    kinds: list[FuzzKind],
    cases: int,
    *,
    seed: int = 0,
    timeout_s: float = 30.0,
    workers: int = 2,
    max_examples: int = 10,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Figures of `cases` mutations per kind (see the module doc)."""
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="na-fuzz-"))
    pool = [Worker() for _ in range(max(1, workers))]
    results = {k.name: KindResult(k.command) for k in kinds}
    lock = threading.Lock()
    try:
        bases: dict[str, Any] = {}
        for kind in kinds:  # the valid files, written by the CLI in a worker
            folder = root / kind.name / "base"
            folder.mkdir(parents=True)
            bases[kind.name] = kind.setup(folder, _setup_runner(pool[0], folder))
            log(f"{kind.name}: base files ready")
        work: queue.Queue[tuple[FuzzKind, int]] = queue.Queue()
        for i in range(cases):
            for kind in kinds:
                work.put((kind, i))

        def drain(worker: Worker) -> None:
            while True:
                try:
                    kind, i = work.get_nowait()
                except queue.Empty:
                    return
                rng = random.Random(f"{seed}:{kind.name}:{i}")
                folder = root / kind.name / f"case{i}"
                folder.mkdir()
                case = kind.make_case(rng, i, folder, bases[kind.name])
                answer = worker.run(case.argv, folder, timeout_s)
                outcome, why = classify(answer, case.invalid)
                with lock:
                    r = results[kind.name]
                    r.cases += 1
                    r.counts[outcome] += 1
                    r.known_invalid += case.invalid
                    r.elapsed_s += float(answer.get("elapsed_s") or timeout_s)
                    if outcome not in ("clean_errors", "accepted_valid") and len(r.examples) < max_examples:
                        r.examples.append({"case": i, "mutation": case.mutation, "outcome": outcome, "why": why})
                    done = sum(x.cases for x in results.values())
                if done % 100 == 0:
                    log(f"{done} of {cases * len(kinds)} cases, {time.perf_counter() - t0:.0f} s")
                shutil.rmtree(folder, ignore_errors=True)

        threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in pool]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in pool:
            w.stop()
        shutil.rmtree(root, ignore_errors=True)
    per_kind = {name: r.to_json() for name, r in results.items()}
    elapsed = time.perf_counter() - t0
    return {
        "cases_min_per_kind": min((r.cases for r in results.values()), default=0),
        "tracebacks": sum(r.counts["tracebacks"] for r in results.values()),
        "hangs": sum(r.counts["hangs"] for r in results.values()),
        "wrong_accepts": sum(r.counts["wrong_accepts"] for r in results.values()),
        "kinds": per_kind,
        "cases_total": sum(r.cases for r in results.values()),
        "elapsed_s": round(elapsed, 1),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=500, help="malformed inputs per kind (default 500)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated input kinds (default all: {', '.join(KINDS)})"
    )
    parser.add_argument("--timeout-s", type=float, default=30.0, help="a case running longer is a hang (default 30)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes running the CLI (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    parser.add_argument("--examples", type=int, default=10, help="failures listed per kind (default 10)")


def run(args: argparse.Namespace, toolkit: Toolkit) -> dict[str, Any]:
    from ..errors import ConfigError

    names = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in names if k not in KINDS]
    if unknown or not names:
        raise ConfigError(f"--kinds: unknown input kind(s) {unknown}; known: {', '.join(KINDS)}")
    if args.cases < 1 or args.workers < 1 or args.timeout_s <= 0:
        raise ConfigError("--cases and --workers must be >= 1 and --timeout-s > 0")
    missing = [k for k in names if KINDS[k].needs_plugin and KINDS[k].needs_plugin not in toolkit.evaluators]
    if missing:
        raise ConfigError(f"--kinds {', '.join(missing)} need the NAS-Bench-201 plugin (na-toolkit-nb201)")
    return run_fuzz(
        [KINDS[k] for k in names],
        args.cases,
        seed=args.seed,
        timeout_s=args.timeout_s,
        workers=args.workers,
        max_examples=args.examples,
        log=lambda msg: print(f"bench fuzz: {msg}", file=sys.stderr, flush=True),
    )


BENCHMARK = Benchmark("fuzz", (__doc__ or "").strip().splitlines()[0], configure, run)
