"""The workshops booked on this pool: those of the configuration, and those added at run time.

Bookings added through the admin API are kept in `state_dir/bookings.json` (written whole, then
renamed, so a crash never leaves half a file), so that a restart in the middle of a workshop day
does not forget them. Those of the configuration change with the configuration (the inventory).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from orchestrator.events import log_event
from orchestrator.schedule import Booking, BookingError, booking

FILE_NAME = "bookings.json"


class Bookings:
    def __init__(self, configured: list[Booking], state_dir: str | None) -> None:
        self.configured = list(configured)
        self._file = Path(state_dir) / FILE_NAME if state_dir else None
        self.added = self._load()

    def all(self) -> list[Booking]:
        return [*self.configured, *self.added]

    def add(self, item: Booking) -> None:
        self.added.append(item)
        self._save()

    def clear_added(self) -> int:
        count = len(self.added)
        self.added = []
        self._save()
        return count

    def _load(self) -> list[Booking]:
        if self._file is None or not self._file.exists():
            return []
        try:
            items = json.loads(self._file.read_text())
            return [booking(item["start"], item["end"], item["capacity"]) for item in items]
        except (OSError, ValueError, KeyError, TypeError, BookingError) as error:
            # The configuration's bookings still hold; the operator is told what was lost.
            log_event(
                "warning", logging.WARNING, what=f"bookings in {self._file} not read: {error}"
            )
            return []

    def _save(self) -> None:
        if self._file is None:
            return
        partial = self._file.with_suffix(".partial")
        partial.write_text(json.dumps([item.as_json() for item in self.added], indent=1))
        os.replace(partial, self._file)
