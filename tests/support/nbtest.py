"""What every test suite needs of a live notebook: waiting for a condition, and running code in a
kernel over its websocket as Notebook 7 does.

Used by the orchestrator's integration tests, the reliability and browser suites (tests/), the
Molecule verifiers (molecule/*/tests, roles/workshop_image/molecule/default/tests, which also runs
it inside a notebook container) and scripts/visit_notebook.py. It needs only `requests` and
`websocket-client`, both in the project's venv and in the workshop image (Jupyter's own
dependencies), and never pytest, so it runs anywhere a notebook is reachable.

What it may touch: the notebook servers it is pointed at, over HTTP and websockets, and nothing
else. Each kernel it starts belongs to the server it was started on, which is the caller's to
remove (the tests remove the whole container). It writes no file and sets no global state.

    wait_for(lambda: stack.stats()["available"] >= 1, 60, "a ready notebook")
    run_code(base_url, token, "6*7")                    # -> "42" (the execute_result)
    server = NotebookServer(base_url, token=token)
    with server.channels(server.start_kernel()) as kernel:
        kernel.execute("print(6 * 7)").stdout            # -> "42\\n"
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import websocket

T = TypeVar("T")

# What a condition may raise while the thing it watches is not there yet: a refused or reset
# connection (requests' errors are OSErrors), a missing key or an unparsable answer.
TRANSIENT: tuple[type[BaseException], ...] = (OSError, KeyError, ValueError)
# Also a failed assert, for conditions written as asserts (testinfra's check_output too).
TRANSIENT_OR_ASSERT: tuple[type[BaseException], ...] = (*TRANSIENT, AssertionError)


class WaitTimeout(AssertionError):
    """A condition did not hold in time; the message names what was awaited."""


def wait_for(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.2,
    retry: tuple[type[BaseException], ...] = TRANSIENT,
) -> T:
    """Call `condition()` until it returns something true, and return that.

    An exception of a `retry` kind counts as "not yet"; any other stops the wait at once (so a
    condition that asserts something on the way fails fast, unless `retry` holds AssertionError).
    After `timeout` seconds, raises WaitTimeout naming `what`, with the last exception if any.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except retry as error:
            last_error = error
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    cause = f" (last error: {last_error!r})" if last_error else ""
    raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}{cause}")


class KernelError(AssertionError):
    """The code raised in the kernel, or the kernel did not answer in time."""


@dataclass
class Execution:
    """What one cell produced, as the notebook shows it."""

    stdout: str = ""  # the stream output (stdout and stderr), in order
    result: str | None = None  # the execute_result's text/plain, if the code ended in a value
    outputs: list[str] = field(default_factory=list)  # every output's text, in order
    error: str | None = None  # "ename: evalue" when the code raised
    execution_count: int | None = None


class KernelChannels:
    """One websocket to a kernel's channels, for one or more executions; close it when done."""

    def __init__(self, server: NotebookServer, kernel_id: str, timeout: float) -> None:
        self.kernel_id = kernel_id
        self.session = uuid.uuid4().hex  # the client's session, as a notebook page makes one
        url = f"{server.channels_url(kernel_id)}?session_id={self.session}"
        headers = dict(server.auth)
        cookies = "; ".join(f"{c.name}={c.value}" for c in server.http.cookies)
        if cookies:
            headers["Cookie"] = cookies
        sslopt = None if server.http.verify else {"cert_reqs": ssl.CERT_NONE}
        self.connection = websocket.create_connection(
            url, header=headers, origin=server.origin, sslopt=sslopt, timeout=timeout
        )

    def __enter__(self) -> KernelChannels:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def send(self, msg_type: str, content: dict[str, Any]) -> str:
        """Send one shell message; return its msg_id."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": "", "date": ""}
        header.update(session=self.session, version="5.3")
        message = {"header": header, "parent_header": {}, "metadata": {}, "channel": "shell"}
        message.update(content=content, buffers=[])
        self.connection.send(json.dumps(message))
        return msg_id

    def send_execute(self, code: str) -> str:
        """Ask the kernel to run `code`, without waiting; return the request's msg_id."""
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {}}
        return self.send("execute_request", {**content, "allow_stdin": False})

    def collect(self, msg_id: str, timeout: float) -> Execution:
        """Read the kernel's messages until the request `msg_id` is done: its reply came (the
        shell channel) and the kernel went idle after it (the iopub channel). The two channels
        are not ordered against each other, so either may come first."""
        execution = Execution()
        replied = idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.connection.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                execution.stdout += content["text"]
                execution.outputs.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                text = content["data"].get("text/plain", "")
                execution.outputs.append(text)
                if kind == "execute_result":
                    execution.result = text
            elif kind == "error":
                execution.error = f"{content['ename']}: {content['evalue']}"
                execution.outputs.append(execution.error)
            elif kind.endswith("_reply"):
                execution.execution_count = content.get("execution_count")
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            if replied and idle:
                return execution
        raise KernelError(f"kernel {self.kernel_id} did not finish within {timeout:g}s")

    def kernel_info(self, timeout: float = 120) -> None:
        """What a notebook page asks first; the kernel answers once it is up."""
        self.collect(self.send("kernel_info_request", {}), timeout)

    def execute(self, code: str, timeout: float = 60, raise_error: bool = True) -> Execution:
        """Run `code` and return what it produced; raise KernelError if it raised (unless told
        not to: then `Execution.error` says so)."""
        execution = self.collect(self.send_execute(code), timeout)
        if raise_error and execution.error:
            raise KernelError(f"the kernel raised {execution.error}")
        return execution


class NotebookServer:
    """One notebook server (its base URL, `http(s)://host/user/<id>/`) reached as a browser does.

    Authenticated by its `token` (the Authorization header), or by the cookies of `http`, a
    requests.Session given by the caller (its cookies, `verify` and proxies are used as they are;
    the _xsrf cookie is fetched as a page load would).
    """

    def __init__(
        self, base_url: str, token: str | None = None, http: requests.Session | None = None
    ) -> None:
        self.base = base_url.rstrip("/") + "/"
        self.auth = {"Authorization": f"token {token}"} if token else {}
        self.http = http or requests.Session()
        parts = urlsplit(self.base)
        self.origin = f"{parts.scheme}://{parts.netloc}"

    def channels_url(self, kernel_id: str) -> str:
        """The kernel's websocket address (ws:// or wss://)."""
        return self.base.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"

    def api(self, method: str, path: str, body: object = None, timeout: float = 60) -> Any:
        """Call the REST API (`path` after api/); the JSON answer, or raise on an error status."""
        headers = dict(self.auth)
        xsrf = self.http.cookies.get("_xsrf")
        if xsrf:
            headers["X-XSRFToken"] = xsrf
        response = self.http.request(
            method, f"{self.base}api/{path}", json=body, headers=headers, timeout=timeout
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def start_kernel(self, name: str = "python3", timeout: float = 120) -> str:
        """POST api/kernels, as JupyterLab's console does; the new kernel's id."""
        return str(self.api("POST", "kernels", {"name": name}, timeout)["id"])

    def open_notebook(self, path: str, kernel: str = "python3", timeout: float = 120) -> str:
        """What Notebook 7 and JupyterLab do to open the notebook at `path` (their SessionContext):
        GET tree for the _xsrf cookie; POST api/sessions on a random path in the notebook's folder,
        with its name and kernel; PATCH the session's path, then its name. The kernel's id."""
        self.http.get(self.base + "tree", headers=self.auth, timeout=timeout).raise_for_status()
        folder, _, name = path.rpartition("/")
        session = self.api(
            "POST",
            "sessions",
            {
                "path": f"{folder}/{uuid.uuid4()}" if folder else str(uuid.uuid4()),
                "type": "notebook",
                "name": name,
                "kernel": {"name": kernel},
            },
            timeout,
        )
        self.api("PATCH", f"sessions/{session['id']}", {"path": path}, timeout)
        self.api("PATCH", f"sessions/{session['id']}", {"name": name}, timeout)
        return str(session["kernel"]["id"])

    def channels(self, kernel_id: str, timeout: float = 180) -> KernelChannels:
        """The kernel's websocket, opened as a page opens it (its Origin, the session's cookies),
        once the kernel answered kernel_info."""
        kernel = KernelChannels(self, kernel_id, timeout)
        try:
            kernel.kernel_info(timeout)
        except BaseException:
            kernel.close()
            raise
        return kernel


def run_code(base_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel on the server at `base_url`, run `code`, return its execute_result text
    (KernelError if it raised or ended without a value). The kernel is left running."""
    server = NotebookServer(base_url, token)
    with server.channels(server.start_kernel(), timeout=max(timeout, 180)) as kernel:
        execution = kernel.execute(code, timeout)
    if execution.result is None:
        raise KernelError(f"no execute_result from {code!r}: {execution.outputs}")
    return execution.result
