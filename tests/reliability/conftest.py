"""The reliability suite: faults, isolation, abuse and load against the real service.

The service is started exactly as the integration and browser tests start it (live_stack.py):
Debian's configurable-http-proxy and the orchestrator as processes, so that `kill -9` is real, on
the machine's Docker engine, with the real notebook image. Everything carries this session's id:
pools `rel<id>...`, the network `tmpnb-rel<id>`; teardown removes exactly those, also on failure.

Tests are marked `fast` (in `make test`, a few minutes) or `slow` (`make test-reliability`, the
repetitions and the load). Each records the figures it proves with the `figure` fixture; they are
printed at the end of the run and written to .run/reliability-figures.json for docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
# The service's starting code is shared with the integration tests rather than copied, and
# nbtest.py (waiting, running code in a kernel) with every suite.
sys.path[:0] = [str(REPO / "orchestrator" / "tests"), str(REPO / "tests" / "support")]
from live_stack import (  # noqa: E402, F401 (IMAGE: re-exported for the test modules)
    IMAGE,
    Stack,
    isolated_network,
    open_docker_client,
    remove_pool_containers,
)

FIGURES: list[dict] = []
FIGURES_FILE = REPO / ".run" / "reliability-figures.json"
TINY_IMAGE = "tmpnb-bench-tiny:1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fast: part of `make test` (minutes)")
    config.addinivalue_line("markers", "slow: `make test-reliability` only (repetitions, load)")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for entry in FIGURES:
        target = f"  (target {entry['target']})" if entry["target"] else ""
        terminalreporter.write_line(
            f"{entry['test']}: {entry['name']} = {entry['value']}{entry['unit']}{target}"
        )
    FIGURES_FILE.parent.mkdir(exist_ok=True)
    FIGURES_FILE.write_text(json.dumps(FIGURES, indent=1) + "\n")


@pytest.fixture
def figure(request) -> Callable[..., None]:
    """`figure(name, value, unit="", target="")`: one measured figure this test proves."""

    def record(name: str, value: object, unit: str = "", target: str = "") -> None:
        if isinstance(value, float):
            value = round(value, 2)
        entry = {
            "test": request.node.name,
            "name": name,
            "value": value,
            "unit": unit,
            "target": target,
            "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        FIGURES.append(entry)
        print(f"FIGURE {entry['test']}: {name} = {value}{unit}")

    return record


from live_fixtures import docker_client, make_stack, network, session_id  # noqa: E402, F401


@pytest.fixture(scope="session")
def pool_prefix() -> str:
    """Pools `rel<session id>...`, network `tmpnb-rel<session id>` (see live_fixtures.py)."""
    return "rel"


@pytest.fixture(scope="session")
def tiny_image(docker_client) -> Iterator[str]:
    """bench/tiny's stand-in notebook (a static server), built with bench/run.py's own code.

    Removed at the end only if this session built it: a benchmark's copy is left alone.
    """
    try:
        docker_client.images.get(TINY_IMAGE)
        built = False
    except docker.errors.ImageNotFound:
        spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        bench.build_tiny_image(docker_client)
        built = True
    yield TINY_IMAGE
    if built:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(TINY_IMAGE)


# ----- what the tests look at -----


def pool_routes(stack: Stack) -> dict[str, dict]:
    """The proxy's routes of this pool: {"/user/<id>": route data}."""
    return {
        path: data
        for path, data in stack.proxy.routes().items()
        if data.get("tmpnb_pool") == stack.pool_name
    }


def container_target(container, network: str) -> str:
    ip = container.attrs["NetworkSettings"]["Networks"].get(network, {}).get("IPAddress")
    return f"http://{ip}:8888" if ip else ""


def metric(stack: Stack, name: str) -> float:
    """One unlabelled sample (or the sum over labels) from the admin port's /metrics."""
    return stack.metric(name)


def no_traceback(stack: Stack) -> None:
    log = stack.log_text()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]


def timed(action: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=kwargs.pop("timeout", 30), **kwargs)
