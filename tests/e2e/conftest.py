"""A whole lab cluster (3 etcd members, 3 agents, the API) started the way a user starts it."""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.labtools import Lab


@pytest.fixture(scope="module")
def lab(tiny_images: Path) -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="lab-", dir="/tmp"))
    base = random.randrange(30000, 50000, 400)
    env = {
        **os.environ,
        "CORRAL_CONFIG": str(root / "client.json"),
        "CORRAL_IMAGES_DIR": str(tiny_images),
        "CORRAL_LAB_DIR": str(root / "lab"),
    }
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    lab = Lab(root / "lab", env)
    up = lab.corral("lab", "up", "--nodes", "3", "--vms", "1", "--accel", "tcg",
                    "--base-port", str(base), "--api-port", str(base + 390), timeout=180,
                    check=False)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        yield lab
    finally:
        lab.corral("lab", "down", check=False, timeout=120)
