"""WarmKernelManager: jupyter_server's kernel manager with one kernel per kernelspec started early.

A warm kernel is started once the server runs (the extension's start hook), outside the manager's
kernel map: `/api/kernels`, `/api/sessions`, the Running panel and the idle culler do not see it,
and its messages are not watched, so it never moves the server's `last_activity`. The visitor's
first start of that kernelspec, however the front end asks (a session on a random path, then
renamed; POST /api/kernels), takes it: the kernel is moved into the map after it ran, silently,
the code of `decisions.handout_code` (working directory, `JPY_SESSION_NAME` and `__session__` of
that start), and its launch arguments become that start's, so a restart is an ordinary one. Any
doubt, or an error, gives an ordinary start. The next warm kernel starts `refill_delay` seconds
after a hand-out, so that its start does not compete with the visitor's first cells.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from queue import Empty

from jupyter_client.kernelspec import NoSuchKernel
from jupyter_server._tz import utcnow
from jupyter_server.prometheus.metrics import KERNEL_CURRENTLY_RUNNING_TOTAL
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import Float, List, TraitError, Unicode, validate

from . import decisions


class NotWarmable(Exception):
    """A configured kernelspec that cannot be kept warm (not ipykernel)."""


@dataclass
class _Slot:
    """One kernelspec's place in the pool."""

    name: str
    state: str = decisions.STARTING
    km: object | None = None
    env: dict[str, str] | None = None
    error: str = ""
    missing_imports: list[str] = field(default_factory=list)
    start_seconds: float | None = None
    handed_out: int = 0
    filling: asyncio.Task | None = None

    def report(self) -> dict[str, object]:
        model: dict[str, object] = {"state": self.state, "handed_out": self.handed_out}
        if self.start_seconds is not None:
            model["start_seconds"] = round(self.start_seconds, 3)
        if self.missing_imports:
            model["missing_imports"] = list(self.missing_imports)
        if self.error:
            model["error"] = self.error
        return model


class WarmKernelManager(AsyncMappingKernelManager):
    """A kernel manager that keeps one kernel per configured kernelspec started before it is asked
    for (see the module's docstring)."""

    warm_kernel_names = List(
        Unicode(),
        default_value=["python3"],
        config=True,
        help="Kernelspecs that keep one kernel started before a visitor asks (ipykernel only).",
    )

    warm_imports = List(
        Unicode(),
        default_value=[],
        config=True,
        help="Modules each warm kernel imports in advance; no name reaches the visitor's namespace",
    )

    refill_delay = Float(
        30.0,
        min=0.0,
        config=True,
        help="Seconds after a hand-out before the next warm kernel of that kernelspec starts.",
    )

    warm_start_timeout = Float(
        120.0,
        min=1.0,
        config=True,
        help="Seconds a warm kernel may take to start, answer and import warm_imports.",
    )

    handout_timeout = Float(
        10.0,
        min=0.1,
        config=True,
        help="Seconds the hand-out's code may take in the warm kernel; past it, an ordinary start.",
    )

    @validate("warm_imports")
    def _check_warm_imports(self, proposal):
        for name in proposal.value:
            if not decisions.is_module_name(name):
                raise TraitError(f"WarmKernelManager.warm_imports: not a module name: {name!r}")
        return proposal.value

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._slots: dict[str, _Slot] = {}
        self._stopping = False
        self._background: set[asyncio.Future] = set()  # referenced until done

    # ------------------------------------------------------------------ the pool

    def start_warm_pool(self) -> None:
        """Start one warm kernel per configured kernelspec (once the event loop runs)."""
        for name in dict.fromkeys(self.warm_kernel_names):
            if name not in self._slots:
                self._slots[name] = _Slot(name)
                self._fill_later(name, 0.0)

    def warm_readiness(self, page: str = "warm") -> dict[str, object]:
        """What GET /api/warm-kernels answers (decisions.readiness), with the first page's state."""
        slots = {name: slot.report() for name, slot in self._slots.items()}
        return decisions.readiness(slots, page)

    def _fill_later(self, name: str, delay: float) -> None:
        slot = self._slots[name]
        if self._stopping or (slot.filling is not None and not slot.filling.done()):
            return
        slot.state = decisions.WAITING if delay > 0 else decisions.STARTING
        slot.filling = asyncio.create_task(self._fill(slot, delay))

    async def _fill(self, slot: _Slot, delay: float) -> None:
        await asyncio.sleep(delay)
        slot.state = decisions.STARTING
        attempt = 0
        while not self._stopping:
            attempt += 1
            began = time.monotonic()
            try:
                km, env, missing = await self._start_warm(slot.name)
            except (NoSuchKernel, NotWarmable) as error:
                # A configuration that no retry mends: say so in the readiness answer.
                slot.state, slot.error = decisions.FAILED, f"{type(error).__name__}: {error}"
                self.log.error("Warm kernel %s: %s", slot.name, slot.error)
                return
            except Exception as error:
                slot.error = f"{type(error).__name__}: {error}"
                wait = decisions.retry_delay(attempt)
                self.log.warning(
                    "Warm kernel %s did not start (%s); next try in %.0f s",
                    slot.name,
                    slot.error,
                    wait,
                )
                await asyncio.sleep(wait)
                continue
            if self._stopping:
                await self._discard(km)
                return
            slot.km, slot.env, slot.missing_imports = km, env, missing
            slot.state, slot.error = decisions.READY, ""
            slot.start_seconds = time.monotonic() - began
            self._watch_pool_kernel(slot, km)
            self.log.info(
                "Warm kernel %s ready (%s) in %.2f s%s",
                slot.name,
                km.kernel_id,
                slot.start_seconds,
                f"; could not import {', '.join(missing)}" if missing else "",
            )
            return

    async def _start_warm(self, name: str):
        """Start a kernel outside the kernel map, wait until it answers, run the warm imports."""
        spec = self.kernel_spec_manager.get_kernel_spec(name)
        if not decisions.is_warmable(spec.language, spec.argv):
            raise NotWarmable(f"{name} is not an ipykernel kernelspec")
        env = decisions.without_session(os.environ)
        kwargs = self._kernel_start_kwargs(env=env, cwd=self.root_dir)
        km, _, kernel_id = self.pre_start_kernel(name, kwargs)
        kwargs["kernel_id"] = kernel_id
        try:
            async with asyncio.timeout(self.warm_start_timeout):
                await km.start_kernel(**kwargs)
                missing = await self._warm_up(km)
        except BaseException:
            await self._discard(km)
            raise
        return km, env, missing

    async def _warm_up(self, km) -> list[str]:
        client = km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=self.warm_start_timeout)
        finally:
            client.stop_channels()
        if not self.warm_imports:
            return []
        reply = await self._run_silently(
            km,
            decisions.warm_import_code(self.warm_imports),
            {"missing": decisions.missing_imports_expression(self.warm_imports)},
        )
        missing = reply.get("user_expressions", {}).get("missing", {})
        with contextlib.suppress(ValueError, SyntaxError, TypeError):
            return list(ast.literal_eval(missing.get("data", {}).get("text/plain", "[]")))
        return list(self.warm_imports)

    async def _run_silently(self, km, code: str, user_expressions=None) -> dict:
        """Execute `code` silently, without history; the reply's content, or an error."""
        client = km.client()
        client.start_channels(iopub=False, stdin=False, hb=False, control=False)
        try:
            msg_id = client.execute(
                code,
                silent=True,
                store_history=False,
                user_expressions=user_expressions or {},
                allow_stdin=False,
            )
            while True:
                try:
                    reply = await client.get_shell_msg(timeout=self.warm_start_timeout)
                except Empty as error:
                    raise TimeoutError("no execute_reply from the kernel") from error
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
        finally:
            client.stop_channels()
        content = reply["content"]
        if content.get("status") != "ok":
            raise RuntimeError(f"{content.get('ename', 'error')}: {content.get('evalue', '')}")
        return content

    def _watch_pool_kernel(self, slot: _Slot, km) -> None:
        """A pool kernel that dies or restarts is no longer warm: replace it."""

        def replace():
            if slot.km is km:
                self.log.warning(
                    "Warm kernel %s (%s) died; starting another", slot.name, km.kernel_id
                )
                slot.km, slot.state = None, decisions.WAITING
                task = asyncio.ensure_future(self._discard(km))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                self._fill_later(slot.name, 0.0)

        km._tmpnb_warm_callbacks = [(replace, "restart"), (replace, "dead")]
        for callback, event in km._tmpnb_warm_callbacks:
            km.add_restart_callback(callback, event)

    @staticmethod
    def _unwatch_pool_kernel(km) -> None:
        for callback, event in getattr(km, "_tmpnb_warm_callbacks", []):
            km.remove_restart_callback(callback, event)
        km._tmpnb_warm_callbacks = []

    async def _discard(self, km) -> None:
        """Shut a pool kernel down without touching the server's activity or metrics."""
        self._unwatch_pool_kernel(km)
        try:
            await km.shutdown_kernel(now=True)
        except Exception as error:
            self.log.warning("Warm kernel %s did not shut down cleanly: %s", km.kernel_id, error)

    # ------------------------------------------------------------------ the hand-out

    async def _async_start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        """Start a kernel for a visitor: the warm one when nothing speaks against it."""
        if kernel_id is None or kernel_id not in self:
            taken = await self._hand_out(kernel_id, path, kwargs)
            if taken is not None:
                return taken
        return await super()._async_start_kernel(kernel_id=kernel_id, path=path, **kwargs)

    start_kernel = _async_start_kernel

    async def _hand_out(self, kernel_id, path, kwargs) -> str | None:
        name = kwargs.get("kernel_name") or self.default_kernel_name
        slot = self._slots.get(name)
        env = kwargs.get("env")
        reason = decisions.refusal(
            kernel_name=name,
            kernel_id=kernel_id,
            state=None if slot is None else slot.state,
            arguments=kwargs,
            env=env,
            warm_env=None if slot is None else slot.env,
        )
        if reason is not None:
            if slot is not None:
                self.log.info("Ordinary start of a %s kernel: %s", name, reason)
            return None
        # Taken before any await, so that one warm kernel goes to one start.
        km, slot.km, slot.state = slot.km, None, decisions.WAITING
        began = time.monotonic()
        try:
            self._unwatch_pool_kernel(km)
            cwd = None if path is None else self.cwd_for_path(path, env=env or {})
            session_name = (os.environ if env is None else env).get(decisions.SESSION_VARIABLE)
            code = decisions.handout_code(cwd=cwd or os.getcwd(), session_name=session_name)
            async with asyncio.timeout(self.handout_timeout):
                await self._run_silently(km, code)
            km._launch_args = decisions.visitor_launch_args(km._launch_args, cwd=cwd, env=env)
            self._name_in_connection_file(km, session_name)
        except Exception as error:
            self.log.warning("Warm %s kernel not handed out (%s): ordinary start", name, error)
            await self._discard(km)
            self._fill_later(name, self.refill_delay)
            return None
        kernel_id = km.kernel_id
        # From here on it is an ordinary kernel of the map, as _async_start_kernel leaves one.
        self._kernels[kernel_id] = km
        self._kernel_connections[kernel_id] = 0
        km.execution_state = "idle"
        km.reason = ""
        km.last_activity = utcnow()
        await self._finish_kernel_start(kernel_id)
        KERNEL_CURRENTLY_RUNNING_TOTAL.labels(type=km.kernel_name).inc()
        if not self._initialized_culler:
            self.initialize_culler()
        slot.handed_out += 1
        self.log.info(
            "Kernel started: %s (warm %s, handed out in %.0f ms)",
            kernel_id,
            name,
            1000 * (time.monotonic() - began),
        )
        self._fill_later(name, self.refill_delay)
        return kernel_id

    def _name_in_connection_file(self, km, session_name: str | None) -> None:
        """The connection file names the notebook as an ordinary start's would (jupyter_session)."""
        try:
            with open(km.connection_file, encoding="utf-8") as file:
                info = json.load(file)
            info["jupyter_session"] = session_name or ""
            with open(km.connection_file, "w", encoding="utf-8") as file:
                json.dump(info, file, indent=2)
        except (OSError, ValueError) as error:
            self.log.debug("Connection file of %s not updated: %s", km.kernel_id, error)

    # ------------------------------------------------------------------ shutting down

    async def shutdown_all(self, now=False):
        """Shut the pool down with the visitor's kernels when the server stops."""
        self._stopping = True
        fills = [slot.filling for slot in self._slots.values() if slot.filling is not None]
        for fill in fills:
            fill.cancel()
        # A fill cancelled in the middle of a start shuts its kernel down itself (_start_warm).
        await asyncio.gather(*fills, return_exceptions=True)
        for slot in self._slots.values():
            if slot.km is not None:
                km, slot.km = slot.km, None
                await self._discard(km)
        await super().shutdown_all(now=now)
