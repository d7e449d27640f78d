"""The test suites' own layout: pytest (rootdir imports, no packages) cannot collect two test
modules of one basename in one run, so `pytest orchestrator/tests` would stop at collection."""

import collections
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_no_two_test_modules_of_a_suite_share_a_basename():
    for suite in (REPO / "orchestrator" / "tests", REPO / "tests", REPO / "frontdoor"):
        names = collections.Counter(path.name for path in suite.rglob("test_*.py"))
        assert [name for name, count in names.items() if count > 1] == [], suite
