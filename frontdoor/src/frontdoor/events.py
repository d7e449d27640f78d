"""The sidecar's log lines: one per event, `event=<name> key=value ...`, in the orchestrator's
format, so that one grep reads the front door's journal and the nodes'.

The orchestrator's `events.py` in substance, written again rather than shared: sharing it would take
a third distribution that both packages install (a name pip would also look up on PyPI when it
fetches the wheels) or a dependency on the orchestrator, which brings Docker's SDK to a host that
runs no container. The format is pinned by tests/test_frontdoor_events.py.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("tmpnb-frontdoor")


def _format(value: Any) -> str:
    """A value as `key=value` readers take it: quoted when empty or holding space, = or "."""
    text = str(value)
    if text and not any(char.isspace() or char in '"=' for char in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One line for the event; fields that are None are left out."""
    words = [f"event={event}"]
    words += [f"{key}={_format(value)}" for key, value in fields.items() if value is not None]
    log.log(level, " ".join(words))


def setup_logging(level: int = logging.INFO) -> None:
    """Lines to stderr (the journal adds host and unit), with the time and level in front."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z"
    )
    # Tornado's access log would add a line per request; its errors still reach tornado.application.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
