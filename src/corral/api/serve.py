"""Running the API under uvicorn."""

from __future__ import annotations

import copy
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG

from corral.api.app import create_app
from corral.api.peer import PeerCertProtocol
from corral.api.wire import DEFAULT_MAX_IN_FLIGHT, AccessLog
from corral.pki.files import TLSFiles

# Open event streams never end by themselves: on shutdown they get this long, then are cut
# (an EventSource reconnects, to this API once it is back or to another).
SHUTDOWN_GRACE_SECONDS = 5

# Where `serve` leaves the app's settings for its worker processes: uvicorn starts each worker
# from an import string (FACTORY), not from an app object, so they cannot be passed as
# arguments. Each worker builds its own app, with its own etcd connection and view.
SETTINGS_ENV = "CORRAL_API_SETTINGS"
FACTORY = "corral.api.serve:app_from_env"

# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). A
# metrics scrape of 5,000 VMs renders for a third of a second in a worker thread; each time
# the event loop comes back from waiting on sockets it waited up to this long for the GIL,
# several times per request: scraped every 2 s, GET /vms/{id} at 100/s went from 6 to 41-83
# ms at p99, and to 14-25 ms with 1 ms (bench/scrape.py).
GIL_SWITCH_SECONDS = 0.001


@dataclass(frozen=True)
class AppSettings:
    etcd_endpoints: list[str]
    pki_dir: Path | None = None
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    access_log: AccessLog = AccessLog.CHANGES

    def to_json(self) -> str:
        return json.dumps({"etcd_endpoints": self.etcd_endpoints,
                           "pki_dir": str(self.pki_dir) if self.pki_dir else None,
                           "max_in_flight": self.max_in_flight,
                           "access_log": self.access_log.value})

    @classmethod
    def from_json(cls, text: str) -> AppSettings:
        raw = json.loads(text)
        pki_dir = raw["pki_dir"]
        return cls([str(e) for e in raw["etcd_endpoints"]], Path(pki_dir) if pki_dir else None,
                   int(raw["max_in_flight"]), AccessLog(raw["access_log"]))

    def app(self) -> FastAPI:
        """The app of this process, which from now serves it."""
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        tls = TLSFiles.in_dir(self.pki_dir, "host") if self.pki_dir is not None else None
        return create_app(self.etcd_endpoints, tls=tls, pki_dir=self.pki_dir,
                          max_in_flight=self.max_in_flight, access_log=self.access_log)


def app_from_env() -> FastAPI:
    """The app of one worker process, from the settings `serve` left in its environment."""
    settings = os.environ.get(SETTINGS_ENV)
    if not settings:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start workers with `corral api serve`")
    return AppSettings.from_json(settings).app()


def log_config() -> dict[str, Any]:
    """uvicorn's logging, without its access log (Corral keeps its own, api/access_log.py),
    and with that log's lines on the same stream as uvicorn's."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["corral"] = {"format": "%(levelname)s:     %(message)s"}
    config["handlers"]["corral"] = {"formatter": "corral", "class": "logging.StreamHandler",
                                    "stream": "ext://sys.stderr"}
    config["loggers"]["corral.api.access"] = {"handlers": ["corral"], "level": "INFO",
                                              "propagate": False}
    return config


def uvicorn_tls(tls_cert: Path | None = None, tls_key: Path | None = None,
                pki_dir: Path | None = None) -> dict[str, Any]:
    """uvicorn's TLS options. With the host's pki dir: HTTPS with the host certificate, and a
    client certificate is asked for but not required (browsers and the CLI show a token
    instead); one that is shown must be of the cluster CA, and routes see its CN.
    tls_cert/tls_key: serve this certificate instead (one that browsers trust, say)."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("HTTPS needs both a certificate and its key")
    options: dict[str, Any] = {}
    if pki_dir is not None:
        options = TLSFiles.in_dir(pki_dir, "host").uvicorn_kwargs("optional")
        options["http"] = PeerCertProtocol
    if tls_cert is not None or pki_dir is None:
        options |= {"ssl_certfile": tls_cert, "ssl_keyfile": tls_key}
    return options


def serve(etcd_endpoints: list[str], host: str = "127.0.0.1", port: int = 8470,
          tls_cert: Path | None = None, tls_key: Path | None = None,
          pki_dir: Path | None = None, workers: int = 1,
          max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
          access_log: AccessLog = AccessLog.CHANGES) -> None:
    """Serve the API; HTTPS when given a certificate and its key (both or neither), or the
    host's pki dir, with which it also speaks TLS to etcd and to the agents and admits
    members (`create_app`). `workers` > 1: that many processes share the port, each with its
    own app and its own `max_in_flight`. `access_log`: which served requests get a line."""
    options = uvicorn_tls(tls_cert, tls_key, pki_dir)  # every worker serves with them
    options |= {"host": host, "port": port, "log_level": "info", "access_log": False,
                "log_config": log_config(), "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS}
    settings = AppSettings(etcd_endpoints, pki_dir, max_in_flight, access_log)
    if workers == 1:
        uvicorn.run(settings.app(), **options)
        return
    os.environ[SETTINGS_ENV] = settings.to_json()
    uvicorn.run(FACTORY, factory=True, workers=workers, **options)
