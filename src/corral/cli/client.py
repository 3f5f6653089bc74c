"""Finding and talking to the Corral API: config file or env, bearer token, the pinned CA,
one-line errors."""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from corral.api.wire import NEXT_CURSOR_HEADER, SKIPPED_HEADER

# httpx (with the imports of its own CLI) is imported where a request is made: help, and the
# commands that do not call the API, start without it.
if TYPE_CHECKING:
    import httpx

API_PREFIX = "/api/v1"
# Long requests may take their time; a host that does not even take the connection within a
# few seconds is cut off, and the next host's API is tried.
TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 3.0
# A list is read in pages of this size: each answer stays small for the API to build.
PAGE_SIZE = 500
# An API process that is full answers 503 "overloaded" with Retry-After before doing anything,
# so the request is sent again, a few times, whatever it was.
OVERLOAD_RETRIES = 5
MAX_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str
    # The cluster CA's certificate: the API must show a certificate it signed, and no other
    # CA is trusted. None: the system's CAs (or plain HTTP, a lab without TLS).
    ca: Path | None = None
    # Other hosts' APIs, tried in this order when the one before cannot be reached: any host
    # serves the same API, so a dead host does not take the CLI with it.
    others: tuple[str, ...] = ()


def client_config_path() -> Path:
    env = os.environ.get("CORRAL_CONFIG")
    return Path(env) if env else Path.home() / ".config" / "corral" / "client.json"


def write_client_config(url: str, token: str, path: Path | None = None,
                        ca: Path | str | None = None, others: Sequence[str] = ()) -> Path:
    """Write where the API is, its token and the CA to pin (if any), readable by the owner
    only (it holds a secret); `ca`: the CA file the API's certificate must be signed by;
    `others`: more hosts' APIs, for when the first cannot be reached."""
    target = path or client_config_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    saved: dict[str, Any] = {"url": url, "token": token}
    if ca is not None:
        saved["ca"] = str(Path(ca).absolute())
    if others:
        saved["others"] = list(others)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(saved, f)
    tmp.replace(target)
    return target


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: what a script or an operator needs."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_client_config() -> ClientConfig:
    url, token = os.environ.get("CORRAL_URL"), os.environ.get("CORRAL_TOKEN")
    ca = os.environ.get("CORRAL_CA") or None
    others: tuple[str, ...] = ()
    path = client_config_path()
    if not (url and token) and path.exists():
        try:
            saved = json.loads(path.read_text())
            if not url:
                others = tuple(str(u) for u in saved.get("others", []))
            url, token = url or str(saved["url"]), token or str(saved["token"])
            ca = ca or (str(saved["ca"]) if saved.get("ca") else None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            fail(f"cannot read the client config {path}: {e}")
    if not url or not token:
        fail(
            f"no Corral API configured: set CORRAL_URL and CORRAL_TOKEN, or write {path} "
            "(`corral lab up` does)"
        )
    for u in (url, *others):
        if ca and not u.startswith("https://"):
            # A pinned CA with a plain URL would send the token to whoever answers.
            fail(f"the CA {ca} is pinned (ca in {path}, or CORRAL_CA) but the API's URL {u} "
                 "is not https")
    return ClientConfig(url=url, token=token, ca=Path(ca) if ca else None, others=others)


def pinned(ca: Path | None) -> ssl.SSLContext | bool:
    """What httpx verifies the API's certificate with: the pinned CA alone, or the system's."""
    if ca is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as e:
        fail(f"cannot load the pinned CA certificate {ca} (ca in {client_config_path()}, or "
             f"CORRAL_CA): {e}")


def tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx connection error, if that is what it was."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def tls_reason(url: str, ca: Path | None, error: ssl.SSLError) -> str:
    """Why TLS with the API failed, in the words an operator needs."""
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or str(error)
        if ca is not None:
            return (f"the Corral API at {url} is not trusted: its certificate is not one of "
                    f"the pinned CA {ca} ({detail})")
        return (f"the Corral API at {url} is not trusted ({detail}): pin the cluster's CA "
                f"(ca in {client_config_path()}, or CORRAL_CA)")
    return f"TLS with the Corral API at {url} failed: {error.reason or error}"


def shed(reply: httpx.Response) -> float | None:
    """Seconds to wait before sending again, if the API refused the request unserved because
    it was full; None otherwise (a 503 of a store that is down did run the request)."""
    if reply.status_code != 503:
        return None
    try:
        if reply.json()["error"]["code"] != "overloaded":
            return None
    except (ValueError, KeyError, TypeError):
        return None
    try:
        wait = float(reply.headers.get("retry-after", "1"))
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.0), MAX_RETRY_AFTER)


def store_unavailable(reply: httpx.Response) -> bool:
    """The API answered that it cannot reach the cluster store (api/app.py)."""
    if reply.status_code != 503:
        return False
    try:
        return bool(reply.json()["error"]["code"] == "store_unavailable")
    except (ValueError, KeyError, TypeError):
        return False


def error_reason(reply: httpx.Response) -> str:
    """The API's error message (its field is already named in it), or the HTTP status."""
    try:
        err = reply.json()["error"]
        message = str(err["message"])
        field = err.get("field")
        if field and field not in message:
            message = f"{field}: {message}"
        return message
    except (ValueError, KeyError, TypeError):
        return f"HTTP {reply.status_code} {reply.reason_phrase}".strip()


class Api:
    def __init__(self, config: ClientConfig) -> None:
        import httpx

        self.urls = [u.rstrip("/").removesuffix(API_PREFIX) for u in (config.url,
                                                                       *config.others)]
        self.url = self.urls[0]
        self.ca = config.ca
        self.token = config.token
        self.verify = pinned(config.ca)
        self.http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers={"Authorization": f"Bearer {config.token}"},
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
            verify=self.verify,
        )

    def _next_host(self) -> bool:
        """Move on to the next host's API; False when none is left."""
        at = self.urls.index(self.url) + 1
        if at >= len(self.urls):
            return False
        self.url = self.urls[at]
        self.http.base_url = self.url + API_PREFIX
        return True

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The request to the first host whose API can be reached. A change moves on only
        when its connection never opened: it did not reach that host, so sending it to the
        next one cannot do it twice. A read moves on after any transport failure (a host
        that died while it answered)."""
        import httpx

        moves_on: tuple[type[Exception], ...] = (
            (httpx.TransportError,) if method == "GET"
            else (httpx.ConnectError, httpx.ConnectTimeout))
        while True:
            try:
                reply = self.http.request(method, path, **kwargs)
            except moves_on as e:
                if tls := tls_failure(e):
                    fail(tls_reason(self.url, self.ca, tls))
                tried = self.url
                if not self._next_host():
                    where = ", ".join(self.urls)
                    fail(f"cannot reach the Corral API at {where} (is the lab up? "
                         "`corral lab up`)")
                typer.echo(f"warning: cannot reach the Corral API at {tried}; trying "
                           f"{self.url}", err=True)
                continue
            # A host cut off from etcd still answers, but only that it cannot: a read goes
            # on to the next host's API. A change does not (etcd may have taken it).
            if method == "GET" and store_unavailable(reply):
                tried = self.url
                if self._next_host():
                    typer.echo(f"warning: the Corral API at {tried} cannot reach etcd; trying "
                               f"{self.url}", err=True)
                    continue
            return reply

    def reply(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The API's successful answer; anything else ends the command with its reason."""
        import httpx

        try:
            reply = self._send(method, path, **kwargs)
            for _ in range(OVERLOAD_RETRIES):
                if (wait := shed(reply)) is None:
                    break
                time.sleep(wait)
                reply = self._send(method, path, **kwargs)
        except httpx.HTTPError as e:
            fail(f"request to the Corral API at {self.url} failed: {e}")
        if reply.status_code >= 400:
            fail(error_reason(reply))
        if skipped := reply.headers.get(SKIPPED_HEADER):
            typer.echo(f"warning: records that do not decode were left out: {skipped} "
                       "(`corral ha status` says why)", err=True)
        return reply

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON; None for an answer without a body (204 No Content)."""
        reply = self.reply(method, path, **kwargs)
        return reply.json() if reply.content else None

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def get_list(self, path: str, limit: int | None = None, **params: Any) -> list[Any]:
        """A list: its first `limit` records, or all of them, page after page (each page at
        most PAGE_SIZE: the API refuses bigger ones)."""
        clean = {k: v for k, v in params.items() if v is not None}
        out: list[Any] = []
        while True:
            clean["limit"] = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(out))
            reply = self.reply("GET", path, params=clean)
            out += reply.json()
            cursor = reply.headers.get(NEXT_CURSOR_HEADER)
            if cursor is None or (limit is not None and len(out) >= limit):
                return out
            clean["cursor"] = cursor

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)


def connect() -> Api:
    return Api(load_client_config())
