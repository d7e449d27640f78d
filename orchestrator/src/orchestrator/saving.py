"""Visitors' saved work, in and out of their notebooks: the Docker exec and tar steps around
keep.py's rules and store.

Saving lists the notebook's home, chooses what to keep (keep.plan_keep), fetches those files as
a tar stream and puts them in the store (keep.SavedWork); restoring unpacks a visitor's saved
work into the notebook just handed to them. Every failure is logged and counted and leaves the
notebook as it was: a notebook is never kept alive by a save that cannot be done.

May touch: a notebook's container through DockerBackend.exec_output and exec_input, the store
under `state_dir/saved`, the metrics of saved work, the log. It never steps a slot: the pool
calls it (before a culled notebook is removed, at a clean shutdown of the machine, on a hand-out
that resumes, every sweep period) and stays the slot's owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
from collections.abc import Callable, Iterable

from orchestrator import keep
from orchestrator.config import Config
from orchestrator.docker_backend import DockerBackend, DockerError
from orchestrator.events import event_logger
from orchestrator.metrics import Metrics, counter_total
from orchestrator.model import Slot

# What a home's listing may take (the listing of keep.MAX_ENTRIES files, with long names).
LISTING_LIMIT = 8 * 1024**2
# A file changed within this many seconds before the hand-out counts as the visitor's (the
# container's clock and ours are the same host's; this covers rounding).
CLOCK_SLACK_SECONDS = 2
# What a clean shutdown of the node may spend saving the work of the notebooks in use: with the
# requests' drain (app.DRAIN_SECONDS), within the unit's TimeoutStopSec (30 s). A room of 50 takes
# a few seconds (two short execs and a write each, four at a time).
KEEP_ALL_SECONDS = 15


class WorkSaver:
    """Saves and restores visitors' work for one pool. `store` None: nothing is kept.
    `error(kind, error, **fields)`: the pool's way to log and count a failure."""

    def __init__(
        self,
        config: Config,
        docker: DockerBackend,
        metrics: Metrics,
        store: keep.SavedWork | None,
        *,
        pool_name: str,
        monotonic: Callable[[], float],
        error: Callable[..., None],
    ) -> None:
        self.config = config
        self.docker = docker
        self.metrics = metrics
        self.store = store
        self.pool_name = pool_name
        self._log = event_logger(pool=self.pool_name)  # every event line names the pool
        self.monotonic = monotonic
        self._error = error
        self._locks = keep.KeyedLocks()

    async def keep_work(self, slot: Slot) -> None:
        """Save what the visitor made in their home, before their culled notebook goes. Any
        failure is logged and counted, and the removal goes on: a notebook is never kept alive
        by a save that cannot be done."""
        store = self.store
        if store is None or not slot.keep or not slot.container_id or slot.handed_out_at is None:
            return
        container_id = slot.container_id
        started = self.monotonic()
        since = slot.handed_out_at.timestamp() - CLOCK_SLACK_SECONDS
        # One save per key at a time: a visitor's two notebooks culled together merge, in turn,
        # into the same saved work (else the second save would not see the first's files).
        try:
            async with self._locks.hold(slot.keep):
                saved = await self._save_work(store, slot.keep, slot.path_id, container_id, since)
        except (DockerError, keep.KeepError, OSError) as error:
            self._error("keep", error, path=slot.path_id)
            return
        if saved is None:
            return  # the visitor made nothing: nothing to offer them
        self.metrics.kept.inc()
        self._log(
            "kept", path=slot.path_id, files=len(saved.files),
            bytes=saved.bytes, skipped=len(saved.skipped),
            seconds=f"{self.monotonic() - started:.2f}",
        )  # fmt: skip

    async def _save_work(
        self, store: keep.SavedWork, digest: str, path_id: str, container_id: str, since: float
    ) -> keep.Saved | None:
        """List the home, choose (keep.plan_keep), fetch those files, store them; None when
        there is nothing to keep (no file of the visitor's, and nothing kept before)."""
        home = self.config.home_dir
        listing = io.BytesIO()
        await self.docker.exec_output(
            container_id, keep.listing_command(home), listing, LISTING_LIMIT
        )
        before = await asyncio.to_thread(store.lookup, digest)
        plan = keep.plan_keep(
            keep.parse_listing(listing.getvalue()), since, store.cap_bytes,
            before.files if before else {},
        )  # fmt: skip
        if not plan.take and before is None:
            return None
        if not plan.take:
            return await asyncio.to_thread(store.save, digest, path_id, plan, None)
        names = [entry.name for entry in plan.take]
        with tempfile.TemporaryFile() as archive:  # up to keep_max_mb: not held in memory
            await self.docker.exec_output(
                container_id, keep.archive_command(home, names), archive,
                keep.archive_limit(plan), check=False,
            )  # fmt: skip
            archive.seek(0)
            return await asyncio.to_thread(store.save, digest, path_id, plan, archive)

    async def keep_all(self, in_use: Iterable[Slot]) -> int:
        """Save the work of every notebook `in_use`, four at a time, for KEEP_ALL_SECONDS at
        most, and leave the notebooks as they are. Returns how many were saved in time."""
        in_use = list(in_use)
        before = counter_total(self.metrics.kept)
        limit = asyncio.Semaphore(4)

        async def save(slot: Slot) -> None:
            async with limit:
                await self.keep_work(slot)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(save(slot) for slot in in_use)), KEEP_ALL_SECONDS
            )
        saved = round(counter_total(self.metrics.kept) - before)
        self._log("kept-at-shutdown", in_use=len(in_use), saved=saved)
        return saved

    async def restore_work(self, slot: Slot, key_digest: str) -> bool:
        """Unpack the visitor's saved work into the notebook just handed to them (before their
        redirect). False, logged, when it could not be done: they still get the notebook, and the
        work stays saved (to download, or to try again)."""
        store = self.store
        if store is None or not slot.container_id:
            return False
        try:
            with tempfile.TemporaryFile() as archive:
                await asyncio.to_thread(store.restore_archive, key_digest, archive)
                size = archive.tell()
                archive.seek(0)
                await self.docker.exec_input(
                    slot.container_id,
                    ["tar", "-C", self.config.home_dir, "--extract", "--file=-"],
                    archive,
                )
        except (DockerError, keep.KeepError, OSError) as error:
            self._error("restore", error, path=slot.path_id)
            return False
        self.metrics.resumed.inc()
        self._log("resumed", path=slot.path_id, bytes=size)
        return True

    async def sweep(self) -> None:
        """Remove saved work whose time is up (but the work being saved now), and publish what
        is kept."""
        if self.store is None:
            return
        removed = await asyncio.to_thread(self.store.sweep, None, self._locks.busy())
        if removed:
            self._log("saved-expired", count=removed)
        count, size, oldest = await asyncio.to_thread(self.store.stats)
        self.metrics.saved.set(count)
        self.metrics.saved_bytes.set(size)
        self.metrics.saved_oldest.set(oldest or 0)
