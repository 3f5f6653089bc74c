"""`corral watchdog-mux`: share the kernel watchdog among the host's fencing clients."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from corral.fencing.device import WatchdogDevice

DEFAULT_SOCKET = Path("/run/corral/watchdog.sock")
DEFAULT_STATE_DIR = Path("/run/corral/watchdog-mux")  # tmpfs: the host's reset clears it


def watchdog_mux(
    device: Annotated[Path, typer.Option(help="The watchdog device.")] = Path("/dev/watchdog"),
    socket: Annotated[Path, typer.Option(help="Unix socket the clients feed.")] = DEFAULT_SOCKET,
    client_timeout: Annotated[float, typer.Option(
        min=0.5, help="Seconds a client may go unfed before the device is left to fire.")] = 4.0,
    interval: Annotated[float, typer.Option(min=0.1, help="Device feed interval.")] = 0.5,
    device_timeout: Annotated[int, typer.Option(
        min=1, help="Timeout asked of the device (WDIOC_SETTIMEOUT); the one it reads back "
                    "counts.")] = 2,
    state_dir: Annotated[Path, typer.Option(
        help="One marker per armed client, so a restarted mux keeps guarding them; keep it on "
             "a tmpfs.")] = DEFAULT_STATE_DIR,
    fake_device: Annotated[bool, typer.Option(
        hidden=True, help="Tests: --device is a journal file of a fake device.")] = False,
    fake_granularity: Annotated[int, typer.Option(hidden=True, min=1)] = 1,
    fake_refuse_settimeout: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Feed the watchdog device while every armed client (the agent) feeds the mux.

    A client is fenced at most client-timeout + interval + the device's timeout after its
    last feed; the mux tells each client that figure when it arms. With clients armed, a
    stop is refused: the mux runs until they disarm.
    """
    # Imported here: the mux is a host daemon; every other command starts without it.
    import logging

    from corral.fencing.device import DeviceError, FakeWatchdog, LinuxWatchdog
    from corral.fencing.mux import MuxError, WatchdogMux
    from corral.fencing.protocol import bind

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if interval >= client_timeout:
        raise typer.BadParameter(f"must be below --client-timeout ({client_timeout})",
                                 param_hint="--interval")
    dev: WatchdogDevice
    try:
        dev = (FakeWatchdog(fake_granularity, fake_refuse_settimeout, journal=device)
               if fake_device else LinuxWatchdog(device))
    except DeviceError as e:
        raise typer.BadParameter(str(e), param_hint="--device") from None
    sock = bind(socket)
    mux = WatchdogMux(dev, sock, client_timeout, interval, device_timeout, state_dir)
    mux.install_signals()
    try:
        mux.run()
    except (MuxError, OSError) as e:
        logging.getLogger("corral.fencing.mux").error("watchdog-mux stopped: %s", e)
        raise typer.Exit(1) from None
    finally:
        sock.close()
        socket.unlink(missing_ok=True)
