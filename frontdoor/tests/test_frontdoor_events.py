"""The front door's log lines keep the orchestrator's format: `event=<name> key=value ...`."""

import logging

from frontdoor.events import log_event


def test_one_line_per_event_with_quoted_values(caplog):
    with caplog.at_level(logging.INFO, logger="tmpnb-frontdoor"):
        log_event(
            "node-unreachable",
            logging.WARNING,
            node="nb1",
            error='ConnectError: [Errno 111] "refused"',
            empty="",
            skipped=None,
        )
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        'event=node-unreachable node=nb1 error="ConnectError: [Errno 111] \\"refused\\"" empty=""'
    )
