"""`corral watchdog-mux`: share the kernel watchdog among the host's fencing clients."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from corral.fencing.mux import WatchdogMux
from corral.fencing.protocol import bind

DEFAULT_SOCKET = Path("/run/corral/watchdog.sock")


def watchdog_mux(
    device: Annotated[Path, typer.Option(help="The watchdog device.")] = Path("/dev/watchdog"),
    socket: Annotated[Path, typer.Option(help="Unix socket the clients feed.")] = DEFAULT_SOCKET,
    client_timeout: Annotated[float, typer.Option(
        min=1.0, help="Seconds a client may go unfed before the device is left to fire.")] = 10.0,
    interval: Annotated[float, typer.Option(min=0.1, help="Device feed interval.")] = 1.0,
) -> None:
    """Feed the watchdog device while every armed client (the agent) feeds the mux."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if interval >= client_timeout:
        raise typer.BadParameter(f"must be below --client-timeout ({client_timeout})",
                                 param_hint="--interval")
    sock = bind(socket)
    mux = WatchdogMux(device, sock, client_timeout, interval)
    mux.install_signals()
    try:
        mux.run()
    finally:
        sock.close()
        socket.unlink(missing_ok=True)
