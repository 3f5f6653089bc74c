"""A lab of a benchmark's own: the environment of its commands, `corral` run as a user runs
it, and an HTTP client of its API. Shared by the benchmarks that start a lab."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx


class LabDriver:
    def __init__(self, root: Path, images: str, **env: str) -> None:
        self.root = root
        self.env = {**os.environ, "CORRAL_CONFIG": str(root / "client.json"),
                    "CORRAL_LAB_DIR": str(root / "lab"), "CORRAL_IMAGES_DIR": images, **env}
        self.env.pop("CORRAL_URL", None)
        self.env.pop("CORRAL_TOKEN", None)
        self.http: httpx.Client | None = None
        self.url = ""  # the API's root, where the console is served
        self.token = ""

    def corral(self, *args: str, timeout: float = 300) -> str:
        proc = subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=self.env,
                              text=True, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"corral {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def connect(self, timeout: float = 10) -> httpx.Client:
        cfg = json.loads((self.root / "client.json").read_text())
        self.url = str(cfg["url"]).rstrip("/").removesuffix("/api/v1")
        self.token = str(cfg["token"])
        # A lab built as a cluster serves HTTPS with its own CA, which the config pins.
        ca = cfg.get("ca")
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
        self.http = httpx.Client(base_url=self.url + "/api/v1", timeout=timeout, verify=verify,
                                 headers={"Authorization": f"Bearer {self.token}"})
        return self.http

    def destroy(self) -> None:
        """Close the client, destroy the lab (whatever state it is in) and remove its folder."""
        if self.http is not None:
            self.http.close()
        subprocess.run([sys.executable, "-m", "corral.cli.main", "lab", "destroy", "--yes"],
                       env=self.env, capture_output=True, timeout=180, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def use_api(self, url: str) -> None:
        """Talk to the API at url from now on (a cluster lab's hosts each serve one: when the
        host the config names is to be killed, another's)."""
        assert self.http is not None
        self.url = url.rstrip("/")
        self.http.base_url = httpx.URL(self.url + "/api/v1")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        assert self.http is not None
        reply = self.http.request(method, path, json=body)
        reply.raise_for_status()
        return reply.json()
