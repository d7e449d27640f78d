"""The listening sockets: inherited from systemd when it holds them, bound here otherwise.

With socket activation (roles/tmpnb: tmpnb.socket) the ports belong to systemd, not to this process.
A restart, an upgrade or a crash then only delays the visitors who arrive meanwhile: the kernel
queues their connections on the socket systemd keeps open, and the next process accepts them.
Binding the ports ourselves, every connection in that gap would be refused.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping

from tornado.netutil import bind_sockets

# sd_listen_fds(3): the first passed descriptor is always 3.
FIRST_FD = 3
ACTIVATION_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ListenError(Exception):
    """A port cannot be listened on; the message names the option."""


def take_inherited(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The sockets systemd passed to this process (none when it was not socket-activated).

    The variables are removed as sd_listen_fds(3) asks, so nothing this process starts believes the
    sockets are its own.
    """
    env = os.environ if environ is None else environ
    passed_to = env.get("LISTEN_PID", "")
    count = env.get("LISTEN_FDS", "0")
    for name in ACTIVATION_ENV:
        env.pop(name, None)
    if passed_to != str(os.getpid()) or not count.isdigit():
        return []
    sockets = []
    for fd in range(FIRST_FD, FIRST_FD + int(count)):
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def listen(
    ports: Mapping[str, tuple[int, str]], inherited: list[socket.socket]
) -> dict[str, list[socket.socket]]:
    """Sockets for each option name → (port, address): the inherited one on that port, or new ones.

    Every socket systemd passed must be claimed by an option, so a socket unit and a configuration
    that disagree fail at start with the ports named, instead of serving on an unexpected port.
    """
    by_port = {port_of(sock): sock for sock in inherited}
    result: dict[str, list[socket.socket]] = {}
    try:
        for option, (port, address) in ports.items():
            if port in by_port:
                result[option] = [by_port.pop(port)]
                continue
            try:
                result[option] = bind_sockets(port, address)
            except OSError as error:
                raise ListenError(
                    f"--{option}: cannot listen on {address}:{port}: {error.strerror}"
                ) from None
        if by_port:
            options = ", ".join(f"--{option}={port}" for option, (port, _) in ports.items())
            raise ListenError(
                f"systemd passed sockets on port(s) {sorted(by_port)}, but {options}:"
                " the socket unit and the configuration must name the same ports"
            )
    except ListenError:
        close_all([*inherited, *(sock for socks in result.values() for sock in socks)])
        raise
    return result


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
