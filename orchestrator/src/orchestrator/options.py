"""The option table: every option's name, type, default and help, what each accepts, and every
rule across options. The one home of these rules: the tmpnb role checks its variables with them.

Each option of tmpnb's `orchestrate.py` keeps its name and default, so existing command lines and
systemd units keep working. Options come from an optional TOML file (`--config`) and the command
line, which wins; both `--pool_size=3` and `--pool-size=3` are accepted, as tornado.options did.

May touch: the `--config` file, and the logo file it names (`check_files`); nothing else. It
imports the standard library and the pure `schedule` module only, so that the tmpnb role runs it
on the Ansible controller, from the project's source, before it changes anything on a server
(`python -m orchestrator.config --check_config=values`, see config.py). A bad value raises
`ConfigError` whose message is the single line the program prints before exiting with status 2.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from orchestrator import schedule

# The notebook image's contract. {ip} is 0.0.0.0 inside the container's own network namespace,
# and container_ip on the host network, so a host_network notebook is not exposed on every address.
# The token is not on the command line (any account on the host can read /proc/*/cmdline): the
# notebook reads it from its environment, JUPYTER_TOKEN. {token} is still accepted for old images.
DEFAULT_COMMAND = "start-notebook --base-path={base_path} --port={port} --ip={ip}"
COMMAND_PLACEHOLDERS = ("base_path", "port", "ip", "token")

# Secrets come from the environment, never from options (any account can read a command line).
SECRET_ENV = ("API_AUTH_TOKEN", "ADMIN_AUTH_TOKEN")
MIN_SECRET_LENGTH = 32  # characters: a token shorter than this can be guessed


class ConfigError(Exception):
    """A configuration problem, worded as the one line an operator needs to read."""


@dataclass(frozen=True)
class Option:
    name: str
    kind: type  # str, int, float, bool or list (a comma-separated list of strings)
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None  # returns what the option accepts, or None


# ----- what single values accept: each check returns what it accepts when a value is wrong -----


def _at_least(minimum: float) -> Callable[[Any], str | None]:
    def check(value: float) -> str | None:
        return None if value >= minimum else f"a number >= {minimum:g}"

    return check


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"a number from {low:g} to {high:g}"

    return check


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "a TCP port between 1 and 65535"


def _matches(pattern: str, accepts: str) -> Callable[[Any], str | None]:
    regex = re.compile(pattern)

    def check(value: str | None) -> str | None:
        return None if value is None or regex.fullmatch(value) else accepts

    return check


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    ok = parts.scheme in ("http", "https") and parts.hostname and not parts.path.strip("/")
    return None if ok else "an http(s)://host:port URL without a path"


_SIZE = r"[0-9]+[bkmgBKMG]?"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEM_LIMIT = 128 * 1024**2  # a Jupyter server and one kernel do not start in less
MIN_DISK_LIMIT = 16 * 1024**2


def size_bytes(value: str) -> int:
    """Bytes in a Docker size such as 512m or 2g; ValueError for anything else."""
    found = re.fullmatch(r"([0-9]+)([bkmgBKMG]?)", value)
    if found is None:
        raise ValueError(value)
    number, unit = found.groups()
    return int(number) * _SIZE_UNITS[unit.lower()]


def _mem_limit(value: str) -> str | None:
    accepts = "a size such as 512m or 2g, at least 128m (0 would mean no limit at all)"
    if not re.fullmatch(_SIZE, value):
        return accepts
    return None if size_bytes(value) >= MIN_MEM_LIMIT else accepts


def _disk_limit(value: str) -> str | None:
    accepts = "0 (the image's root stays writable, unlimited) or a size such as 256m, at least 16m"
    if not re.fullmatch(_SIZE, value):
        return accepts
    size = size_bytes(value)
    return None if size == 0 or size >= MIN_DISK_LIMIT else accepts


def _schedule(values: list[str]) -> str | None:
    for item in values:
        try:
            schedule.parse(item)
        except schedule.BookingError as error:
            return f"START/END=CAPACITY entries, ISO 8601 times with a zone ({error})"
    return None


@dataclass(frozen=True)
class CommandTemplate:
    """The container's command, split into words once; rendered per container into an argument
    list (never through a shell)."""

    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> CommandTemplate:
        """ValueError names what is wrong: a quote left open, or a placeholder we do not fill."""
        try:
            template = cls(tuple(shlex.split(text)))
        except ValueError as error:
            raise ValueError(f"cannot split it into words ({error})") from None
        try:
            template.render(base_path="/", port=1, ip="0.0.0.0", token="")  # noqa: S104
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"bad placeholder {error}; accepted: "
                + ", ".join("{" + name + "}" for name in COMMAND_PLACEHOLDERS)
            ) from None
        return template

    def render(self, *, base_path: str, port: int, ip: str, token: str) -> list[str]:
        return [
            word.format(base_path=base_path, port=port, ip=ip, token=token) for word in self.words
        ]


def _command(value: str) -> str | None:
    if "{base_path}" not in value:
        return "a command containing the {base_path} placeholder"
    try:
        CommandTemplate.parse(value)
    except ValueError as error:
        return f"a command with {{base_path}} and no other placeholders than ours ({error})"
    return None


def host_binds(values: Sequence[str]) -> dict[str, dict[str, str]]:
    """Docker binds from host_directories entries; ValueError names the first bad one.

    tmpnb's form `/path[:r|rw]` mounts the host path at the same path; `/host:/container[:ro|rw]`
    mounts it elsewhere. Read-write unless told otherwise, as in tmpnb.
    """
    modes = {"r": "ro", "ro": "ro", "w": "rw", "rw": "rw"}
    binds = {}
    for item in values:
        parts = item.split(":")
        mode = "rw"
        if parts[-1] in modes and len(parts) > 1:
            mode = modes[parts.pop()]
        if len(parts) == 1:
            parts.append(parts[0])
        if len(parts) != 2 or not all(part.startswith("/") for part in parts):
            raise ValueError(item)
        binds[parts[0]] = {"bind": parts[1], "mode": mode}
    return binds


def _host_directories(values: list[str]) -> str | None:
    try:
        host_binds(values)
    except ValueError:
        return "comma-separated /host/path[:/container/path][:ro|rw] entries"
    return None


def extra_host_map(values: Sequence[str]) -> dict[str, str]:
    """{hostname: ip} from extra_hosts entries; ValueError names the first bad one."""
    pairs = {}
    for item in values:
        if not re.fullmatch(r"[A-Za-z0-9.-]+:[0-9A-Fa-f.:]+", item):
            raise ValueError(item)
        name, _, address = item.partition(":")
        pairs[name] = address
    return pairs


def _extra_hosts(values: list[str]) -> str | None:
    try:
        extra_host_map(values)
    except ValueError:
        return "comma-separated hostname:ip entries"
    return None


LOGO_TYPES = {
    ".gif": "image/gif",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}
LOGO_MAX_BYTES = 512 * 1024
_LOGO_ACCEPTS = f"a readable {'/'.join(sorted(LOGO_TYPES))} file of at most {LOGO_MAX_BYTES} bytes"


def _text(longest: int) -> Callable[[Any], str | None]:
    def check(value: str) -> str | None:
        ok = len(value) <= longest and all(line.isprintable() for line in value.splitlines())
        return None if ok else f"printable text of at most {longest} characters"

    return check


def _logo(value: str) -> str | None:
    """The name only; the file itself is read by check_files, on the host that shows it."""
    ok = value.startswith("/") and os.path.splitext(value)[1].lower() in LOGO_TYPES
    return None if ok else _LOGO_ACCEPTS


def page_links(values: Sequence[str]) -> list[tuple[str, str]]:
    """(label, url) pairs from `Label|URL` entries; ValueError names the first bad one.

    A URL is http(s):// or a path on this server: never javascript: or data:, whatever the
    operator typed.
    """
    pairs = []
    for item in values:
        label, separator, url = item.rpartition("|")
        label, url = label.strip(), url.strip()
        parts = urlsplit(url)
        absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
        local = not parts.scheme and not parts.netloc and url.startswith("/")
        if not (separator and label and label.isprintable() and (absolute or local)):
            raise ValueError(item)
        if any(character.isspace() for character in url):
            raise ValueError(item)
        pairs.append((label, url))
    return pairs


def _links(values: list[str]) -> str | None:
    try:
        page_links(values)
    except ValueError as error:
        return f"Label|URL entries with an http(s):// or /path URL (bad: {error})"
    return None


# ----- the table -----


def option(default: Any, help: str, check: Callable[[Any], str | None] | None = None) -> Any:
    """One field of Options: its default, its --help text (which the tmpnb role's
    argument_specs.yml repeats word for word, tests/test_role_argument_specs.py), and its check
    (which returns what the option accepts when a value is wrong, else None)."""
    metadata = {"help": help, "check": check}
    if isinstance(default, list):
        items = tuple(default)
        return field(default_factory=lambda: list(items), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Options:
    """Every option, typed, with its default, help and check: the one table of the options
    (OPTIONS below is read from it). config.Config adds what follows from them."""

    # --- tmpnb's README, same names and defaults ---
    allow_origin: str | None = option(
        None, "Set the Access-Control-Allow-Origin header. Use '*' to allow any origin."
    )
    command: str = option(
        DEFAULT_COMMAND,
        "Command to run when booting the image; {base_path}, {port}, {ip}, {token} are replaced",
        _command,
    )
    container_ip: str = option(
        "127.0.0.1", "IP address for containers to bind to (host_network mode only)"
    )
    container_port: int = option(8888, "Port for containers to bind to", _port)
    cpu_shares: int | None = option(None, "Limit CPU shares, per container", _at_least(2))
    warm_max_age: float = option(
        43200,
        "Age (s) after which a notebook nobody took is replaced by a fresh one, a few per cull "
        "pass, so a pool started days ahead is fresh; 0 disables",
        _at_least(0),
    )
    cull_period: float = option(
        600, "Interval (s) for culling idle containers; at most cull_timeout", _at_least(0.5)
    )
    cull_timeout: float = option(3600, "Timeout (s) for culling idle containers", _at_least(1))
    docker_version: str = option(
        "1.13",
        "Version of the Docker API to use; below 1.24 (or 'auto') means negotiate",
        _matches(r"auto|[0-9]+\.[0-9]+", "'auto' or an API version such as 1.41"),
    )
    image: str = option(
        "jupyter/minimal", "Docker image to spawn for new users. Must be on the system already"
    )
    max_dock_workers: int = option(2, "Maximum number of concurrent Docker API calls", _at_least(1))
    mem_limit: str = option(
        "512m",
        "Limit on memory, per container (a size such as 512m or 2g, at least 128m)",
        _mem_limit,
    )
    pool_name: str | None = option(
        None,
        "Name of this pool; its containers carry the label tmpnb.pool=<name> (None: tmpnb)",
        _matches(_NAME, "letters, digits, '_', '.', '-' (max 63), starting with a letter or digit"),
    )
    pool_size: int = option(
        10, "Capacity for containers on this system. Will be prelaunched at startup", _at_least(1)
    )
    port: int = option(
        9999,
        "Port for the main server to listen on; not admin_port, nor a port of the proxy's URLs "
        "on this host",
        _port,
    )
    redirect_uri: str = option(
        "/tree",
        "URI to redirect users to upon initial notebook launch",
        _matches(r"/[^\s]*", "a path starting with /"),
    )
    static_files: str | None = option(
        None,
        "Static files to extract from the initial container launch (a path in the image)",
        _matches(r"/[^\s]*", "an absolute path in the image"),
    )
    # --- tmpnb's later options ---
    admin_ip: str = option("127.0.0.1", "IP address for the admin server to listen on")
    admin_port: int = option(
        10000,
        "Port for the admin server to listen on; not port, nor a port of the proxy's URLs on "
        "this host",
        _port,
    )
    allow_credentials: bool | None = option(None, "Set the Access-Control-Allow-Credentials header")
    allow_headers: str | None = option(None, "Set the Access-Control-Allow-Headers header")
    allow_methods: str | None = option(None, "Set the Access-Control-Allow-Methods header")
    container_user: str | None = option(
        None,
        "User to run containers as (default: the image's user)",
        _matches(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?", "a user name or uid[:gid]"),
    )
    cpu_quota: int = option(
        100000,
        "Limit CPU quota per container, in microseconds per 100 ms period (100000 = one CPU)",
        _at_least(1000),
    )
    cull_max: float = option(
        14400,
        "Longest time (s) a visitor keeps a notebook, counted from the hand-out, whatever its "
        "activity; 0 disables, else at least cull_timeout",
        _at_least(0),
    )
    docker_network: str | None = option(
        "tmpnb-notebooks",
        "Docker network the containers join (no host ports are published); made at start, "
        "with inter-container traffic off, when it does not exist; empty with host_network",
        _matches(_NAME, "a Docker network name"),
    )
    extra_hosts: list[str] = option(
        [], "Extra /etc/hosts entries for containers, comma-separated hostname:ip", _extra_hosts
    )
    host_directories: list[str] = option(
        [], "Host directories to mount, comma-separated /host:/container[:ro|rw]", _host_directories
    )
    host_network: bool = option(
        False,
        "Run containers on the host network, each on its own free port from container_port up "
        "(the command must then bind to {ip})",
    )
    use_tokens: bool = option(
        True, "Give each container a secret token (>= 128 bits) that its URL carries"
    )
    user_length: int = option(
        12,
        "Length of the random /user/<id> path (at least 8: a shorter one is guessed)",
        _at_least(8),
    )
    # --- this implementation ---
    config: str | None = option(None, "TOML file with options (the command line overrides it)")
    disk_limit: str = option(
        "256m",
        "Writable space per notebook: its home (home_dir, seeded from the image) and /tmp are "
        "in-memory file systems of this size, counted in mem_limit (so smaller than it), and the "
        "rest of the file system is read-only; at least 16m, or 0 to keep the image's root "
        "writable and unlimited",
        _disk_limit,
    )
    docker_timeout: float = option(
        60, "Seconds one Docker API call may take before it counts as failed", _at_least(1)
    )
    home_dir: str = option(
        "/home/jovyan",
        "The notebook user's home in the image (absolute), made writable when disk_limit is set",
        _matches(r"/[^\s:,]*", "an absolute path in the image, without spaces, ':' or ','"),
    )
    ip: str = option("127.0.0.1", "IP address for the main server to listen on")
    pids_limit: int = option(
        512, "Maximum number of processes and threads per container", _at_least(16)
    )
    proxy_endpoint: str = option(
        "http://127.0.0.1:8001",
        "configurable-http-proxy API URL (env CONFIGPROXY_ENDPOINT)",
        _http_url,
    )
    proxy_token_file: str | None = option(
        None,
        "File with the proxy's API token (a CONFIGPROXY_AUTH_TOKEN=... line, or the token "
        "alone), read at start and again whenever the proxy refuses the token, so a rotated "
        "token needs no restart; unset, CONFIGPROXY_AUTH_TOKEN from the environment",
        _matches(r"/[^\s]*", "an absolute path"),
    )
    proxy_public_url: str = option(
        "http://127.0.0.1:8000",
        "configurable-http-proxy public URL, used to check readiness through the proxy",
        _http_url,
    )
    ready_timeout: float = option(
        120,
        "Seconds a new container has to answer through the proxy before it is replaced",
        _at_least(1),
    )
    max_boots: int = option(
        0,
        "Most containers booting at once; 0: twice the machine's CPUs",
        _at_least(0),
    )
    reconcile_period: float = option(
        2, "Interval (s) for restoring routes and removing dead containers", _at_least(0.2)
    )
    static_dump_path: str = option(
        "/srv/tmpnb/static",
        "Host directory that --static_files are extracted into",
        _matches(r"/[^\s]*", "an absolute path"),
    )
    # --- a pool sized for the room before it arrives (schedule.py) ---
    schedule: list[str] = option(
        [],
        "Workshops booked ahead, comma-separated START/END=CAPACITY (ISO 8601 times with a "
        "zone): from early enough before START that a full refill fits until END, the pool holds "
        "CAPACITY notebooks instead of pool_size",
        _schedule,
    )
    state_dir: str | None = option(
        None,
        "Directory the orchestrator keeps its state in: bookings added at run time (admin API), "
        "so that they outlive a restart, and visitors' saved work (keep_hours); unset, bookings "
        "last until the next restart and no work is kept",
        _matches(r"/[^\s]*", "an absolute path"),
    )
    # --- nobody loses their work (keep.py) ---
    keep_hours: float = option(
        24,
        "Hours a culled notebook's work (the files its visitor made or changed in home_dir) is "
        "kept for the visitor to continue or download, in state_dir/saved, counted from its last "
        "save; from 0 to 672 (four weeks: the key's cookie lasts 30 days); 0 keeps nothing and "
        "removes what was kept",
        _between(0, 24 * 28),  # the key's cookie lasts KEEP_COOKIE_DAYS (30)
    )
    keep_max_mb: int = option(
        32,
        "Megabytes of work kept per visitor, from 1 to 1024 and less than disk_limit (a new "
        "notebook must hold it again); files beyond it are named in what is kept, not kept",
        _between(1, 1024),
    )
    # --- the visitor's pages (every value is HTML-escaped where it is shown) ---
    title: str = option(
        "Jupyter notebooks", "Title of the visitor's pages (at most 80 characters)", _text(80)
    )
    workshop_name: str | None = option(
        None,
        "Name of the workshop, shown above each page's heading (at most 120 characters)",
        _text(120),
    )
    logo: str | None = option(
        None,
        "Image file (" + ", ".join(sorted(LOGO_TYPES)) + ", at most 512 KiB) shown on the pages",
        _logo,
    )
    message: str | None = option(
        None,
        "A message shown on the pages (plain text, at most 2000 characters; a blank line starts "
        "a paragraph)",
        _text(2000),
    )
    links: list[str] = option(
        [],
        "Links shown on the pages, comma-separated Label|URL entries (http(s):// or /path)",
        _links,
    )
    # --- fairness ---
    max_per_address: int = option(
        0,
        "Most notebooks in use at once by one client address (0: no limit; a room behind one "
        "NAT address shares it)",
        _at_least(0),
    )
    trusted_proxy_hops: int = option(
        1,
        "Proxies in front of the orchestrator that add X-Forwarded-For (1: configurable-http-"
        "proxy; 2: a front door such as HAProxy before it); the client address is the one the "
        "outermost of them saw",
        _at_least(0),
    )
    max_waiting: int = option(
        500, "Most visitors waiting in line for a notebook; more get a 429 page", _at_least(0)
    )


def _kind(hint: Any) -> type:
    """str, int, float, bool or list, from a field's type (`X | None` is an X)."""
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    kind: type = list if typing.get_origin(hint) is list else hint
    return kind


def _default(item: Field[Any]) -> Any:
    if item.default_factory is not MISSING:
        return item.default_factory()
    return item.default


def _options() -> tuple[Option, ...]:
    hints = typing.get_type_hints(Options)
    return tuple(
        Option(
            name=item.name,
            kind=_kind(hints[item.name]),
            default=_default(item),
            help=item.metadata["help"],
            check=item.metadata["check"],
        )
        for item in fields(Options)
        if "help" in item.metadata
    )


OPTIONS: tuple[Option, ...] = _options()

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


# ----- reading values -----

_EMPTY_UNSETS = frozenset({"docker_network"})


def _convert(option: Option, raw: Any) -> Any:
    """Turn a command-line string or a TOML value into the option's type, or raise ConfigError."""
    accepts = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        list: "a comma-separated list",
    }[option.kind]
    try:
        if option.kind is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if option.kind is list:
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return [str(item).strip() for item in items if str(item).strip()]
        if option.kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if option.kind is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError
        # `--docker_network=` unsets the network (for host_network, or Docker's default bridge).
        return None if raw == "" and option.name in _EMPTY_UNSETS else raw
    except (TypeError, ValueError):
        raise ConfigError(f"--{option.name}: got {raw!r}, expected {accepts}") from None


def _parse_argv(argv: Sequence[str]) -> dict[str, Any]:
    """`--name=value`, `--name value` and bare `--flag` for booleans; dashes or underscores."""
    values: dict[str, Any] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"unexpected argument {arg!r}: options look like --name=value")
        name, has_value, raw = arg[2:].partition("=")
        name = name.replace("-", "_")
        option = OPTIONS_BY_NAME.get(name)
        if option is None:
            raise ConfigError(f"--{name}: unknown option (see --help)")
        if not has_value:
            if option.kind is bool:
                raw = "true"
            elif args and not args[0].startswith("--"):
                raw = args.pop(0)
            else:
                raise ConfigError(f"--{name}: needs a value (--{name}=...)")
        values[name] = _convert(option, raw)
    return values


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"--config: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"--config: {path} is not valid TOML: {error}") from None
    values: dict[str, Any] = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        option = OPTIONS_BY_NAME.get(name)
        if option is None or name == "config":
            raise ConfigError(f"--config: {path}: unknown option {key!r}")
        values[name] = _convert(option, raw)
    return values


def read(argv: Sequence[str], environ: Mapping[str, str], *, files: bool = True) -> Options:
    """The options from the command line, the --config file and CONFIGPROXY_ENDPOINT, each value
    and every rule across them checked (with `files`, the files they name on this host too), and
    the secrets' lengths in `environ`. ConfigError names the first thing wrong."""
    command_line = _parse_argv(argv)
    values = {option.name: option.default for option in OPTIONS}
    if "CONFIGPROXY_ENDPOINT" in environ:
        values["proxy_endpoint"] = environ["CONFIGPROXY_ENDPOINT"]
    if command_line.get("config"):
        values.update(_read_file(command_line["config"]))
    values.update(command_line)
    for option in OPTIONS:
        value = values[option.name]
        if option.check is not None and value is not None:
            accepts = option.check(value)
            if accepts:
                raise ConfigError(f"--{option.name}: got {value!r}, expected {accepts}")
    problem = rule_across_options(values)
    if problem:
        raise ConfigError(problem)
    if files and values["logo"]:
        _check_logo_file(values["logo"])
    check_secrets(environ)
    return Options(**values)


# ----- rules across options, and what no single value shows -----


def _proxy_ports_here(values: Mapping[str, Any]) -> dict[int, str]:
    """{port: option} of the proxy's URLs whose host is this one's (loopback or our own
    addresses): the orchestrator cannot listen on those."""
    here = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", values["ip"], values["admin_ip"]}  # noqa: S104
    ports = {}
    for name in ("proxy_endpoint", "proxy_public_url"):
        parts = urlsplit(values[name])
        if parts.hostname in here:
            ports[parts.port or (443 if parts.scheme == "https" else 80)] = name
    return ports


def rule_across_options(values: Mapping[str, Any]) -> str | None:
    """The first rule across options that `values` (each already valid alone) break, worded as
    the one line naming every option it compares; None when they keep them all. Pure."""
    if values["host_network"] and values["docker_network"]:
        return (
            "--host_network and --docker_network: choose one, not both "
            "(an empty --docker_network unsets the network)"
        )
    if values["host_network"] and "{ip}" not in values["command"]:
        return (
            "--command must bind to {ip} with --host_network: {ip} is --container_ip there, and "
            "a fixed address such as 0.0.0.0 would expose every notebook on every address"
        )
    if values["cull_period"] > values["cull_timeout"]:
        return (
            f"--cull_period ({values['cull_period']:g}) must not be longer than --cull_timeout "
            f"({values['cull_timeout']:g}): an idle notebook would outlive its timeout"
        )
    if values["cull_max"] and values["cull_max"] < values["cull_timeout"]:
        return (
            f"--cull_max ({values['cull_max']:g}) must be 0 or at least --cull_timeout "
            f"({values['cull_timeout']:g}): a working visitor would lose their notebook first"
        )
    disk = size_bytes(values["disk_limit"])
    if values["keep_hours"] and 0 < disk <= values["keep_max_mb"] * 1024**2:
        return (
            f"--keep_max_mb ({values['keep_max_mb']}) must be less than --disk_limit "
            f"({values['disk_limit']}): a visitor's saved work is unpacked into a new notebook's "
            "home of that size"
        )
    if disk and disk >= size_bytes(values["mem_limit"]):
        return (
            f"--disk_limit ({values['disk_limit']}) must be smaller than --mem_limit "
            f"({values['mem_limit']}): the notebook's files are held in its memory"
        )
    if values["port"] == values["admin_port"]:
        return f"--port and --admin_port must differ (both are {values['port']})"
    proxy_ports = _proxy_ports_here(values)
    for name in ("port", "admin_port"):
        if values[name] in proxy_ports:
            return (
                f"--{name} ({values[name]}) must differ from the port of "
                f"--{proxy_ports[values[name]]} ({values[proxy_ports[values[name]]]}): the proxy "
                "listens there on this host"
            )
    return None


def _check_logo_file(path: str) -> None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError:
        size = 0
    if not 0 < size <= LOGO_MAX_BYTES:
        raise ConfigError(f"--logo: got {path!r}, expected {_LOGO_ACCEPTS}")


def check_secrets(environ: Mapping[str, str]) -> None:
    """API_AUTH_TOKEN and ADMIN_AUTH_TOKEN: unset, empty, or long enough not to be guessed. The
    message gives the rule only: a token never reaches a log."""
    for name in SECRET_ENV:
        if 0 < len(environ.get(name, "")) < MIN_SECRET_LENGTH:
            raise ConfigError(f"{name}: must be empty or at least {MIN_SECRET_LENGTH} characters")


def help_text(prog: str) -> str:
    lines = [f"Usage: {prog} [OPTIONS]", "", "Options:"]
    for option in sorted(OPTIONS, key=lambda o: o.name):
        default = option.default
        if option.kind is list:
            default = ",".join(default) or "none"
        lines.append(f"  --{option.name:<22} {option.help} (default {default})")
    lines.append(
        "  --check_config           check the options (and --config file), then exit; "
        "=values: not the files they name"
    )
    lines.append("  --help                   show this help information")
    lines.append("")
    lines.append(
        "Environment: CONFIGPROXY_AUTH_TOKEN (required), CONFIGPROXY_ENDPOINT, DOCKER_HOST, "
        f"API_AUTH_TOKEN, ADMIN_AUTH_TOKEN (each empty or at least {MIN_SECRET_LENGTH} characters)"
    )
    return "\n".join(lines)
