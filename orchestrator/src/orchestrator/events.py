"""One log line per event, as `event=<name> key=value ...`, so that an operator can grep for it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tmpnb")


def _format(value: Any) -> str:
    text = str(value)
    if not text or any(char.isspace() or char in '"=' for char in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    parts = [f"event={event}"] + [
        f"{key}={_format(value)}" for key, value in fields.items() if value is not None
    ]
    log.log(level, " ".join(parts))


def event_logger(**context: Any) -> Callable[..., None]:
    """`log_event` with `context` in every line (e.g. pool=<name>), said once by its owner."""

    def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
        log_event(event, level, **context, **fields)

    return log


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    root = logging.getLogger("tmpnb")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Tornado's access log adds a line per request; errors still reach tornado.application.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
