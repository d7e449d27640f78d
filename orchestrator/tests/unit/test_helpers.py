"""Small pure helpers: deep-link URLs, time parsing, log lines."""

import logging
from datetime import UTC, datetime

from orchestrator.events import log_event
from orchestrator.model import Slot, SlotState
from orchestrator.timeutil import isoformat, parse_time
from orchestrator.web.visitor import _notebook_url

SLOT = Slot(
    path_id="abc",
    state=SlotState.IN_USE,
    created=datetime.now(UTC),
    created_mono=0.0,
    token="T0K",  # noqa: S106
)


def test_deep_links_keep_path_and_query_and_add_the_token():
    url = _notebook_url(SLOT, "git-pull", "repo=https%3A%2F%2Fx%2Fy&urlpath=lab%2Ftree%2Fy", True)
    assert url == "/user/abc/git-pull?repo=https%3A%2F%2Fx%2Fy&urlpath=lab%2Ftree%2Fy&token=T0K"
    assert _notebook_url(SLOT, "/lab", "", False) == "/user/abc/lab"
    assert _notebook_url(SLOT, "notebooks/x.ipynb", "a=&b=2", True) == (
        "/user/abc/notebooks/x.ipynb?a=&b=2&token=T0K"
    )


def test_times_from_the_proxy_docker_and_jupyter_are_aware():
    assert parse_time("2026-11-22T00:15:49.288Z") == datetime(2026, 11, 22, 0, 15, 49, 288000, UTC)
    assert parse_time("2026-11-22T00:11:49.073335Z").tzinfo is not None
    assert parse_time("2026-11-22T00:11:49.123456789+00:00").microsecond == 123456
    assert parse_time("2026-11-22T00:11:49") == datetime(2026, 11, 22, 0, 11, 49, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time(None) is None
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time(isoformat(moment)) == moment


def test_log_lines_are_key_value(caplog):
    logger = logging.getLogger("tmpnb")
    logger.propagate = True
    with caplog.at_level(logging.INFO, logger="tmpnb"):
        log_event("culled", path="abc", reason="idle", error="two words", skipped=None)
    assert caplog.records[-1].getMessage() == 'event=culled path=abc reason=idle error="two words"'
