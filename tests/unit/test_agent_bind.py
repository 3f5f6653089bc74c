"""The agent's console socket takes connections from the moment the host registers its
address, before the console's server runs: a client early by a second waits instead of
being refused."""

from __future__ import annotations

import socket
from pathlib import Path

from corral.agent.main import bind
from corral.agent.settings import AgentSettings


def test_the_console_socket_accepts_before_the_server_runs(tmp_path: Path) -> None:
    sock = bind(AgentSettings("n1", tmp_path, tmp_path))
    try:
        with socket.create_connection(sock.getsockname()[:2], timeout=2):
            pass  # refused (ConnectionRefusedError) on a socket bound but not listening
    finally:
        sock.close()
