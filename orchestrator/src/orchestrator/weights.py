"""A visitor's CPU weight: a notebook handed out gets `cpu_shares`, eight times a warm one's
(container_spec.visitor_cpu_shares), written once the burst of hand-outs it came in has passed.

A room arriving at once must not pay a Docker update per visitor while it arrives (each costs
the engine and runc several milliseconds of CPU, on the cores the room's requests need): the
weights due are written once hand-outs have paused WEIGHTS_QUIET_SECONDS, and at the latest
WEIGHTS_LATEST_SECONDS after the first of them (decisions.weights_due_in), one Docker call at a
time, so spawns and removals keep the rest of max_dock_workers.

May touch: DockerBackend.set_cpu_shares, and the slot table to read (never step) whether a
notebook is still in use. Failures go through the pool's `guarded` (logged and counted, kind
`cpu_shares`): the visitor keeps a working notebook with less priority.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from orchestrator.config import Config
from orchestrator.container_spec import visitor_cpu_shares
from orchestrator.decisions import weights_due_in
from orchestrator.docker_backend import DockerBackend
from orchestrator.model import Slot, SlotState

WEIGHTS_QUIET_SECONDS = 0.5
WEIGHTS_LATEST_SECONDS = 5.0


class VisitorWeights:
    """The weights still to be written, in order, and the one task that writes them.

    `guarded(kind, action, *args)` runs one step as the pool does (a failure logged, counted);
    `background(coroutine)` starts a task the pool cancels on stop."""

    def __init__(
        self,
        config: Config,
        docker: DockerBackend,
        slots: Mapping[str, Slot],
        *,
        monotonic: Callable[[], float],
        sleep: Callable[[float], Coroutine[Any, Any, None]],
        guarded: Callable[..., Awaitable[Any]],
        background: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
    ) -> None:
        self.config = config
        self.docker = docker
        self.slots = slots
        self.monotonic = monotonic
        self._sleep = sleep
        self._guarded = guarded
        self._background = background
        # Notebooks handed out whose weight is still to be written, in order, and when the first
        # and the latest of them were added.
        self._due: dict[str, None] = {}
        self._first = self._last = 0.0
        self._task: asyncio.Task[None] | None = None

    def give(self, slot: Slot) -> None:
        """A notebook handed out gets a visitor's CPU weight (the pool's is an eighth of it), once
        the burst it came in has passed (decisions.weights_due_in)."""
        now = self.monotonic()
        if not self._due:
            self._first = now
        self._due[slot.path_id] = None
        self._last = now
        if self._task is None or self._task.done():
            self._task = self._background(self._write_weights())

    async def _write_weights(self) -> None:
        """Write the weights due, one Docker call at a time (spawns and removals keep the rest
        of max_dock_workers). If Docker refuses, the visitor keeps a working notebook with less
        priority: logged, counted."""
        while self._due:
            wait = weights_due_in(
                self.monotonic(),
                self._first,
                self._last,
                WEIGHTS_QUIET_SECONDS,
                WEIGHTS_LATEST_SECONDS,
            )
            if wait > 0:
                await self._sleep(wait)
                continue
            due, self._due = list(self._due), {}
            for path_id in due:
                slot = self.slots.get(path_id)
                if slot is not None and slot.container_id and slot.state is SlotState.IN_USE:
                    await self._guarded(
                        "cpu_shares",
                        self.docker.set_cpu_shares,
                        slot.container_id,
                        visitor_cpu_shares(self.config),
                    )
