"""`corral vm console VMID --interactive`: this terminal attached to the VM's serial console
through the API's websocket, in raw mode, until Ctrl-] (as telnet and virsh console leave).

Output is written to stdout as it comes (the recent tail first); every byte typed goes to the
guest, Ctrl-C and Ctrl-D included. Without a terminal on stdin (a pipe), what is read is sent
and the console closes once stdin ends and the guest has been quiet for a moment.
"""

from __future__ import annotations

import contextlib
import os
import select
import ssl
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any

import typer

ESCAPE = b"\x1d"  # Ctrl-]
QUIET_AFTER_EOF = 2.0  # seconds of no output before a piped session closes
API_PREFIX = "/api/v1"


def ws_url(api_url: str, vmid: int) -> str:
    """The API's console websocket from its base URL (http or https, with or without the
    /api/v1 suffix)."""
    base = api_url.rstrip("/").removesuffix(API_PREFIX)
    for plain, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(plain):
            return f"{ws}{base.removeprefix(plain)}{API_PREFIX}/vms/{vmid}/console/ws"
    raise ValueError(f"the API's URL {api_url!r} is neither http nor https")


def until_escape(data: bytes) -> tuple[bytes, bool]:
    """What to send of a read from the keyboard, and whether Ctrl-] was typed in it."""
    head, sep, _ = data.partition(ESCAPE)
    return head, bool(sep)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode (every key as typed, no local echo), as it was afterwards."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def attach(api_url: str, token: str, ssl_context: ssl.SSLContext | bool, vmid: int) -> int:
    """Runs the session; the exit code: 0 when left with Ctrl-] or closed normally."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    url = ws_url(api_url, vmid)
    context = ssl_context if isinstance(ssl_context, ssl.SSLContext) else None
    try:
        ws = connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                     ssl=context, open_timeout=10, max_size=4 * 1024 * 1024, compression=None)
    except InvalidStatus as e:
        raise _refused(e.response.status_code, e.response.body) from None
    except (OSError, TimeoutError, WebSocketException) as e:
        typer.echo(f"error: cannot open the console at {url}: {e}", err=True)
        raise typer.Exit(1) from None
    interactive = sys.stdin.isatty()
    out = sys.stdout.buffer
    quiet = threading.Event()  # set by the reader after each chunk: not quiet yet

    def print_output() -> None:
        with contextlib.suppress(ConnectionClosed):
            for message in ws:
                out.write(message if isinstance(message, bytes) else message.encode())
                out.flush()
                quiet.set()

    reader = threading.Thread(target=print_output, daemon=True)
    with ws:
        if interactive:
            typer.echo(f"Connected to VM {vmid}'s serial console. Leave with Ctrl-].", err=True)
        reader.start()
        stdin = sys.stdin.fileno()
        with raw_terminal(stdin) if interactive else contextlib.nullcontext():
            left = _type(ws, stdin, reader, quiet)
        if not left:
            reader.join(0.5)
    if left:
        typer.echo("\r\n[left the console]", err=True)
        return 0
    close = ws.protocol.close_rcvd
    code = close.code if close else 1006
    reason = close.reason if close and close.reason else "the connection broke"
    if code != 1000:
        typer.echo(f"\r\n[console closed: {reason} (code {code})]", err=True)
    return 0 if code == 1000 else 1


def _type(ws: Any, stdin: int, reader: threading.Thread, quiet: threading.Event) -> bool:
    """Sends what is typed until Ctrl-] (True) or the console closes (False)."""
    from websockets.exceptions import ConnectionClosed

    while reader.is_alive():
        ready, _, _ = select.select([stdin], [], [], 0.2)
        if not ready:
            continue
        data = os.read(stdin, 4096)
        if not data:  # stdin ended (a pipe): wait for the guest to go quiet, then leave
            while reader.is_alive():
                quiet.clear()
                if not quiet.wait(QUIET_AFTER_EOF):
                    return True
            return False
        send, escaped = until_escape(data)
        try:
            if send:
                ws.send(send)
        except ConnectionClosed:
            return False
        if escaped:
            return True
    return False


def _refused(status: int, body: bytes | bytearray | None) -> typer.Exit:
    import json

    reason = f"the API refused the console ({status})"
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        error = json.loads(body or b"")["error"]
        reason = f"{error['code']}: {error['message']}"
    typer.echo(f"error: {reason}", err=True)
    return typer.Exit(1)
