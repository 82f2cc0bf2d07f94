"""A run resumed by other code than the code that started it (search/compat.py). The replay serves the
stored evaluations, but its scores and later choices follow the resuming toolkit's defaults: a resume by
another na_toolkit or plugin version says so, naming both, and report.md and `runs` list the versions of each
session. Defaults that affect results and that the config can name (a learned time model's statistic) are
written into the stored config at the start, so newer code resumes the run with them. Old run folders (their
provenance without the versions' own record) still open and resume."""

import logging

import pytest

from conftest import NB201_SEARCH, config_doc, default_toolkit
from na_toolkit import __version__
from na_toolkit.cli.runs import describe_run
from na_toolkit.search import run_search
from na_toolkit.search.outputs import report_markdown
from na_toolkit.search.provenance import ARTIFACT
from na_toolkit.store import SQLiteRunStore
from na_toolkit_nb201 import __version__ as NB201_VERSION

#: four table look-ups, a random strategy and a small forest: a run and its resume take a tenth of a second
CHEAP = {
    "evaluations": 4,
    "strategy": {"name": "random"},
    "predictors": {"accuracy": {"name": "ensemble", "options": {"n_estimators": 5}}},
}


def _run(tmp_path):
    doc = config_doc(NB201_SEARCH, tmp_path / "runs", **CHEAP)
    return run_search(doc, run_dir=tmp_path / "run", toolkit=default_toolkit(), progress=False, outputs=False)


def _resume(folder):
    return run_search(None, resume=folder, toolkit=default_toolkit(), progress=False, outputs=False)


def _as_made_by(folder, version, legacy=False):
    """Make the run's first session look as if na_toolkit `version` had made it (its built-in plugins carry
    na_toolkit's version); `legacy`: as a run made before sessions recorded toolkit_version and evaluations."""
    with SQLiteRunStore.open(folder) as store:
        doc = store.artifact(ARTIFACT)
        first = doc["events"][0]
        for info in first["plugins"].values():
            if info["builtin"]:
                info["version"] = version
        if legacy:
            first.pop("toolkit_version")
            first.pop("evaluations")
        else:
            first["toolkit_version"] = version
        store.save_artifact(ARTIFACT, doc)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_resume_by_another_version_warns_naming_both_and_the_run_lists_its_sessions(tmp_path, caplog, legacy):
    first = _run(tmp_path)
    _as_made_by(first.run_dir, "0.0.9", legacy=legacy)
    with caplog.at_level(logging.WARNING, logger="na_toolkit.search"):
        resumed = _resume(first.run_dir)
    said = [r.getMessage() for r in caplog.records if "was started by" in r.getMessage()]
    assert len(said) == 1, said  # one warning, on stderr (the na_toolkit logger) ...
    expected = (
        f"run run was started by na_toolkit 0.0.9 and is resumed by na_toolkit {__version__}: its 4 stored "
        f"evaluations are replayed, but how they are scored and what is evaluated after them follow "
        f"na_toolkit {__version__}'s defaults"
    )
    assert said[0].startswith(f"warning: {expected}")
    summary = resumed.summary()
    assert [w for w in summary["warnings"] if "was started by" in w] == [
        said[0].removeprefix("warning: ")
    ]  # ... and kept
    report = report_markdown(summary)  # report.md's text
    sessions = report.split("## Sessions (na_toolkit and plugin versions)\n\n")[1].split("\n\n")[0].splitlines()
    assert sessions[0].startswith("- start ") and f"na_toolkit 0.0.9, na-toolkit-nb201 {NB201_VERSION}" in sessions[0]
    assert sessions[1].startswith("- resume ") and "(after 4 stored evaluations)" in sessions[1]
    assert sessions[1].endswith(f": na_toolkit {__version__}, na-toolkit-nb201 {NB201_VERSION}")
    assert describe_run(first.run_dir, default_toolkit())["toolkit"] == ["0.0.9", __version__]
    assert resumed.summary()["evaluated"] == first.summary()["evaluated"]  # NB201: no default of today differs


def test_a_resume_by_the_same_versions_says_nothing(tmp_path, caplog):
    first = _run(tmp_path)
    with caplog.at_level(logging.WARNING, logger="na_toolkit.search"):
        resumed = _resume(first.run_dir)
    assert not [r for r in caplog.records if "was started by" in r.getMessage()]
    assert not [w for w in resumed.summary()["warnings"] if "was started by" in w]
    assert describe_run(first.run_dir, default_toolkit())["toolkit"] == [__version__]
