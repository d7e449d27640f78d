"""The warm pool's decisions, free of Jupyter and of I/O, so that they are unit-tested alone.

- which kernelspecs can be kept warm (ipykernel only: the hand-out speaks Python to the kernel);
- whether a visitor's start may take the warm kernel, and if not, why (any doubt: ordinary start);
- the Python that the hand-out runs, silently, in the warm kernel so that it becomes the kernel an
  ordinary start would have made for that notebook (working directory, `JPY_SESSION_NAME`,
  `__session__`, IPython's directory history);
- the launch arguments a restart of the handed-out kernel must use;
- what the readiness endpoint answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# ipykernel sets `__session__` from this variable at start-up (ipykernel/ipkernel.py), and
# jupyter_server's session manager puts the notebook's path in it (SessionManager.get_kernel_env).
SESSION_VARIABLE = "JPY_SESSION_NAME"

# What a session's or the kernels API's start passes besides the kernel's id and path: anything
# else (extra arguments, a provisioner's options) is a doubt, and gets an ordinary start.
HANDOUT_ARGUMENTS = frozenset({"kernel_name", "env"})

# The states of a kernelspec's warm slot, as the readiness endpoint reports them.
STARTING = "starting"
READY = "ready"
# Handed out (or lost): the next one starts after WarmKernelManager.refill_delay.
WAITING = "waiting"
FAILED = "failed"

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def is_module_name(name: str) -> bool:
    """A dotted Python module name (`numpy`, `matplotlib.pyplot`), safe to import by name."""
    return _MODULE_NAME.fullmatch(name) is not None


def is_warmable(language: str, argv: Iterable[str]) -> bool:
    """Only ipykernel kernels are kept warm: the hand-out's code is Python run by IPython."""
    return language.lower() == "python" and any("ipykernel" in part for part in argv)


def without_session(env: Mapping[str, str]) -> dict[str, str]:
    """The environment apart from the variable that names the notebook."""
    return {key: value for key, value in env.items() if key != SESSION_VARIABLE}


def refusal(
    *,
    kernel_name: str,
    kernel_id: str | None,
    state: str | None,
    arguments: Iterable[str],
    env: Mapping[str, str] | None,
    warm_env: Mapping[str, str] | None,
) -> str | None:
    """Why a start of `kernel_name` must not take the warm kernel; None when it may.

    `state` is the warm slot's state (None: this kernelspec is not kept warm), `arguments` the
    start's keyword arguments other than its path and id, `env` the environment the start asks
    for (None: the server's own, as for POST /api/kernels), `warm_env` the warm kernel's.
    """
    if state is None:
        return f"{kernel_name} is not kept warm"
    if kernel_id is not None:
        return "the client chose the kernel's id"
    if state != READY:
        return f"the warm {kernel_name} kernel is {state}"
    unexpected = sorted(set(arguments) - HANDOUT_ARGUMENTS)
    if unexpected:
        return "the start asks for " + ", ".join(unexpected)
    if env is not None and (warm_env is None or without_session(env) != without_session(warm_env)):
        return "the start asks for an environment of its own"
    return None


def handout_code(*, cwd: str, session_name: str | None) -> str:
    """Python that turns the warm kernel into the one an ordinary start would have made.

    Run with silent=True and store_history=False: no output, no history, the execution count stays
    1. Only `__session__` is bound in the visitor's namespace (as ipykernel binds it), and only
    when the notebook has a name; every value is a Python literal (repr), never spliced text.
    """
    lines = [
        f"__import__('os').chdir({cwd!r})",
        # IPython's directory history (`_dh`, `%cd -`) and starting_dir: where the kernel began.
        f"get_ipython().history_manager.dir_hist[:] = [__import__('pathlib').Path({cwd!r})]",
        f"get_ipython().starting_dir = {cwd!r}",
    ]
    if session_name is None:
        lines.append(f"__import__('os').environ.pop({SESSION_VARIABLE!r}, None)")
    else:
        lines.append(f"__import__('os').environ[{SESSION_VARIABLE!r}] = {session_name!r}")
    if session_name:
        lines.append(f"__session__ = {session_name!r}")
    else:
        lines.append("get_ipython().user_ns.pop('__session__', None)")
    return "\n".join(lines) + "\n"


def warm_import_code(modules: Iterable[str]) -> str:
    """Python that imports each module without binding a name; a module that fails is skipped
    (the visitor's own import then says why), `missing_imports_expression` reports it."""
    blocks = []
    for module in modules:
        if not is_module_name(module):
            raise ValueError(f"not a module name: {module!r}")
        importing = f"__import__('importlib').import_module({module!r})"
        blocks.append(f"try:\n    {importing}\nexcept Exception:\n    pass")
    return "\n".join(blocks) + "\n"


def missing_imports_expression(modules: Iterable[str]) -> str:
    """A user expression (evaluated after the warm imports, binding nothing) that lists the
    modules that are not imported."""
    names = tuple(modules)
    return f"[name for name in {names!r} if name not in __import__('sys').modules]"


def visitor_launch_args(
    warm_args: Mapping[str, object], *, cwd: str | None, env: Mapping[str, str] | None
) -> dict[str, object]:
    """The launch arguments a restart of the handed-out kernel uses: the warm kernel's, with the
    working directory and environment of the visitor's start (absent when the start gave none,
    as an ordinary start's would be)."""
    args = {key: value for key, value in warm_args.items() if key not in ("cwd", "env")}
    if cwd is not None:
        args["cwd"] = cwd
    if env is not None:
        args["env"] = dict(env)
    return args


def readiness(slots: Mapping[str, Mapping[str, object]], page: str = "warm") -> dict[str, object]:
    """The readiness endpoint's answer: ready once every configured kernelspec has its warm kernel
    (no kernelspec configured: ready at once) and the first page is no longer `warming`
    (first_page.py)."""
    return {
        "ready": page != "warming" and all(slot.get("state") == READY for slot in slots.values()),
        "kernels": {name: dict(slot) for name, slot in sorted(slots.items())},
        "page": page,
    }


def retry_delay(attempt: int, *, first: float = 1.0, cap: float = 60.0) -> float:
    """Seconds before the next try of a warm start that failed `attempt` times (1, 2, 4 ... cap)."""
    return min(cap, first * 2 ** max(0, attempt - 1))
