"""The `na-toolkit` process from its first instant: a Ctrl-C while the CLI's own modules still import is one
line and exit 130, as during a command. Deterministic: a `sitecustomize` (imported by the interpreter before
the CLI starts) holds the import of one module until the test has sent SIGINT."""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, interruptible

#: a meta-path finder that, when MODULE is imported, says so in READY and sleeps until a signal ends it
HOLD_IMPORT = """
import os, sys, time

class _Hold:
    def find_spec(self, name, path=None, target=None):
        if name == os.environ["HOLD_MODULE"]:
            sys.meta_path.remove(self)
            open(os.environ["HOLD_READY"], "w").close()
            time.sleep(60)
        return None

def _hold_at_exit():
    open(os.environ["HOLD_READY"], "w").close()
    time.sleep(60)

if os.environ["HOLD_MODULE"] == "exit":  # the last of the exit functions, after the command and all others
    import atexit

    atexit.register(_hold_at_exit)
else:
    sys.meta_path.insert(0, _Hold())
"""


def _entry_point_script() -> str:
    """The script pip writes for `na-toolkit`, from setup.cfg's console_scripts entry (`module:function`)."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    line = next(x for x in config["options.entry_points"]["console_scripts"].splitlines() if x.strip())
    module, function = line.split("=", 1)[1].strip().split(":")
    return f"import sys\nfrom {module} import {function}\nif __name__ == '__main__':\n    sys.exit({function}())\n"


@pytest.mark.parametrize(
    ("launch", "held"),
    [
        ("console script", "na_toolkit.cli.main"),
        ("python -m", "na_toolkit.cli.main"),
        ("console script", "pluggy"),
        ("python -m", "exit"),
    ],
)
def test_a_ctrl_c_while_the_cli_imports_or_exits_is_one_line_and_exit_130(tmp_path, launch, held):
    """Held while the CLI's module or its plugin manager imports (before `main` runs), or in Python's exit
    after the command (its output is kept)."""
    (tmp_path / "sitecustomize.py").write_text(HOLD_IMPORT)
    (tmp_path / "na-toolkit").write_text(_entry_point_script())
    ready = tmp_path / "ready"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "HOLD_MODULE": held,
        "HOLD_READY": str(ready),
        "NA_TOOLKIT_PLUGINS": "",  # the built-ins alone: a quicker start
    }
    args = [str(tmp_path / "na-toolkit")] if launch == "console script" else ["-m", "na_toolkit"]
    proc = subprocess.Popen(
        [sys.executable, *args, "arch", "seeds"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists(), proc.communicate(timeout=10)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, err) == (130, "na-toolkit: interrupted\n")
    assert ("simple-cnn" in out) == (held == "exit")


def test_importing_the_package_imports_none_of_its_modules():
    """The CLI catches a Ctrl-C from `na_toolkit.__main__.run` on; what runs before it (`import na_toolkit`, which
    `python -m na_toolkit` and the console script do first) must be instant. Lazy names still resolve."""
    code = (
        "import sys, na_toolkit; before = sorted(m for m in sys.modules if m.startswith(('na_toolkit', 'pluggy')));"
        "from na_toolkit import hookimpl, NAToolkitError; print(before, callable(hookimpl), NAToolkitError.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(REPO_ROOT))
    assert proc.stdout.split() == ["['na_toolkit']", "True", "NAToolkitError"], proc.stderr
