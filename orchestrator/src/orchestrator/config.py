"""The configuration the orchestrator runs with: the options (options.py, where every rule is),
the secrets from the environment, and what follows from them, converted once at start-up.

`Config` is typed and frozen, built once by `parse()`: the durations in seconds, the sizes in bytes,
the command split into words, the host binds, extra hosts, page links and bookings are computed
here, so nothing validated at start is converted again on a spawn or a request.

May touch: the environment it is given, the --config file, the logo and the proxy's token file
(read_token_file); standard library only, like options.py, so that `python -m orchestrator.config
--check_config[=values] --config=FILE` runs on a machine with nothing installed (the tmpnb role
runs it on the Ansible controller before it changes a server).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from orchestrator import schedule
from orchestrator.options import (
    LOGO_TYPES,
    CommandTemplate,
    ConfigError,
    Options,
    extra_host_map,
    host_binds,
    page_links,
    read,
    size_bytes,
)

PROG = "tmpnb-orchestrator"
CHECK_FLAGS = ("--check_config", "--check-config")


@dataclass(frozen=True)
class Config(Options):
    """Every option (the fields of Options), the secrets, and the values derived from them."""

    # Secrets come from the environment, never from options (any account can read a command line).
    proxy_token: str = field(default="", repr=False)
    api_token: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)

    # Derived in __post_init__, once.
    command_template: CommandTemplate = field(init=False, repr=False)
    binds: dict[str, dict[str, str]] = field(init=False, repr=False)
    extra_host_map: dict[str, str] = field(init=False, repr=False)
    page_links: tuple[tuple[str, str], ...] = field(init=False, repr=False)
    bookings: tuple[schedule.Booking, ...] = field(init=False, repr=False)
    mem_limit_bytes: int = field(init=False, repr=False)
    disk_limit_bytes: int = field(init=False, repr=False)  # 0: no in-memory home, writable root
    keep_max_bytes: int = field(init=False, repr=False)
    keep_seconds: float = field(init=False, repr=False)
    logo_type: str | None = field(init=False, repr=False)  # the logo's Content-Type
    effective_pool_name: str = field(init=False, repr=False)  # the label tmpnb.pool=<this>
    negotiate_docker_version: bool = field(init=False, repr=False)
    boots_at_once: int = field(init=False, repr=False)  # max_boots, 0 made the machine's own

    def __post_init__(self) -> None:
        derived: dict[str, Any] = {
            "command_template": CommandTemplate.parse(self.command),
            "binds": host_binds(self.host_directories),
            "extra_host_map": extra_host_map(self.extra_hosts),
            "page_links": tuple(page_links(self.links)),
            "bookings": tuple(schedule.parse(item) for item in self.schedule),
            "mem_limit_bytes": size_bytes(self.mem_limit),
            "disk_limit_bytes": size_bytes(self.disk_limit),
            "keep_max_bytes": self.keep_max_mb * 1024**2,
            "keep_seconds": self.keep_hours * 3600,
            "logo_type": LOGO_TYPES[os.path.splitext(self.logo)[1].lower()] if self.logo else None,
            "effective_pool_name": self.pool_name or "tmpnb",
            "negotiate_docker_version": _negotiates(self.docker_version),
            "boots_at_once": self.max_boots or 2 * (os.cpu_count() or 1),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)


def _negotiates(version: str) -> bool:
    """docker-py 7 cannot speak API versions below 1.24 (tmpnb's default was 1.13)."""
    if version == "auto":
        return True
    major, minor = (int(part) for part in version.split("."))
    return (major, minor) < (1, 24)


def parse(
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
    *,
    require_token: bool = True,
    files: bool = True,
) -> Config:
    """The Config from the command line, the config file and the environment, every rule checked
    (options.read). `files=False` leaves out what concerns files on this host (the logo)."""
    environ = os.environ if environ is None else environ
    options = read(argv, environ, files=files)
    proxy_token = environ.get("CONFIGPROXY_AUTH_TOKEN", "")
    if options.proxy_token_file and require_token:
        try:
            proxy_token = read_token_file(options.proxy_token_file)
        except (OSError, ValueError) as error:
            raise ConfigError(f"--proxy_token_file: {error}") from None
    if not proxy_token and not require_token:
        proxy_token = "unused-when-checking"  # noqa: S105 (--check_config reads no secret)
    if not proxy_token:
        raise ConfigError(
            "CONFIGPROXY_AUTH_TOKEN: not set (nor --proxy_token_file); the proxy's API token is "
            "required"
        )
    return Config(
        **{item.name: getattr(options, item.name) for item in fields(Options)},
        proxy_token=proxy_token,
        api_token=environ.get("API_AUTH_TOKEN") or None,
        admin_token=environ.get("ADMIN_AUTH_TOKEN") or None,
    )


def read_token_file(path: str) -> str:
    """The proxy's token from `path`: the value of a CONFIGPROXY_AUTH_TOKEN= line (the proxy's
    EnvironmentFile), or the file's one line. ValueError when it holds no token."""
    with open(path, encoding="utf-8") as file:
        lines = [line.strip() for line in file if line.strip() and not line.startswith("#")]
    for line in lines:
        name, equals, value = line.partition("=")
        if equals and name.strip() == "CONFIGPROXY_AUTH_TOKEN":
            return value.strip().strip("'\"")
    if len(lines) == 1 and "=" not in lines[0]:
        return lines[0]
    raise ValueError(f"{path} holds no token (a CONFIGPROXY_AUTH_TOKEN=... line)")


def is_check(args: Sequence[str]) -> bool:
    return any(arg.partition("=")[0] in CHECK_FLAGS for arg in args)


def check_main(args: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    """`--check_config[=values]`: check the options (what the tmpnb role runs, on the controller
    with `=values`, and on the server in the template's `validate`), print one line, exit 0 or 2.
    `=values` leaves out the files the options name (the logo), which are on the server."""
    modes = [arg.partition("=")[2] for arg in args if arg.partition("=")[0] in CHECK_FLAGS]
    rest = [arg for arg in args if arg.partition("=")[0] not in CHECK_FLAGS]
    if any(mode not in ("", "values") for mode in modes):
        print(f"{PROG}: --check_config: expected nothing or =values", file=sys.stderr)
        return 2
    try:
        parse(rest, environ, require_token=False, files="values" not in modes)
    except ConfigError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    print(f"{PROG}: configuration is valid")
    return 0


if __name__ == "__main__":
    sys.exit(check_main(sys.argv[1:]))
