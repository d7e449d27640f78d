"""Which sockets the orchestrator serves on: systemd's when it passed them, its own otherwise."""

from __future__ import annotations

import os
import socket

import pytest

from orchestrator import listeners


@pytest.fixture
def held():
    """A listening socket on a free loopback port, as systemd would hold it; closed afterwards."""
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_the_inherited_socket_serves_its_port_and_the_other_is_bound(held):
    port = listeners.port_of(held)
    sockets = listeners.listen(
        {"port": (port, "127.0.0.1"), "admin_port": (0, "127.0.0.1")}, [held]
    )
    try:
        assert sockets["port"] == [held]
        assert len(sockets["admin_port"]) == 1
        assert sockets["admin_port"][0] is not held
    finally:
        listeners.close_all(sockets["admin_port"])


def test_a_socket_no_option_claims_is_refused_with_both_ports_named(held):
    port = listeners.port_of(held)
    with pytest.raises(listeners.ListenError) as refused:
        listeners.listen({"port": (0, "127.0.0.1")}, [held])
    assert str(port) in str(refused.value)
    assert "--port=0" in str(refused.value)
    assert held.fileno() == -1, "sockets are closed when the start is refused"


def test_a_port_in_use_is_refused_naming_the_option(held):
    port = listeners.port_of(held)
    with pytest.raises(
        listeners.ListenError, match=rf"^--admin_port: cannot listen on 127.0.0.1:{port}"
    ):
        listeners.listen({"port": (0, "127.0.0.1"), "admin_port": (port, "127.0.0.1")}, [])


def test_sockets_passed_to_another_process_are_not_taken_and_the_variables_go():
    env = {
        "LISTEN_PID": str(os.getpid() + 1),
        "LISTEN_FDS": "2",
        "LISTEN_FDNAMES": "a:b",
        "PATH": "/bin",
    }
    assert listeners.take_inherited(env) == []
    assert env == {"PATH": "/bin"}


def test_no_activation_means_no_inherited_socket():
    env = {"PATH": "/bin"}
    assert listeners.take_inherited(env) == []
    assert env == {"PATH": "/bin"}


def test_passed_descriptors_become_non_blocking_sockets_not_inherited_by_children(held):
    # Put a copy of the held socket where systemd puts the first one, as sd_listen_fds(3) says.
    saved = os.dup(listeners.FIRST_FD) if _is_open(listeners.FIRST_FD) else None
    os.dup2(held.fileno(), listeners.FIRST_FD)
    try:
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
        (sock,) = listeners.take_inherited(env)
        assert listeners.port_of(sock) == listeners.port_of(held)
        assert sock.getblocking() is False
        assert sock.get_inheritable() is False
        assert env == {}
        sock.detach()  # the descriptor is restored below, not closed
    finally:
        if saved is None:
            os.close(listeners.FIRST_FD)
        else:
            os.dup2(saved, listeners.FIRST_FD)
            os.close(saved)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
