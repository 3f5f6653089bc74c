"""`corral api serve --tls-cert --tls-key`: the options reach uvicorn, both or neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from corral.cli.main import app

runner = CliRunner()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("corral.api.serve.uvicorn.run",
                        lambda app, **kw: calls.append(kw))
    return calls


def serve(*args: str) -> Any:
    return runner.invoke(app, ["api", "serve", "--etcd", "http://127.0.0.1:1", *args])


def test_https_with_a_certificate_and_its_key(tmp_path: Path,
                                              served: list[dict[str, Any]]) -> None:
    cert, key = tmp_path / "host.crt", tmp_path / "host.key"
    cert.write_text("c")
    key.write_text("k")
    result = serve("--tls-cert", str(cert), "--tls-key", str(key), "--port", "9443")
    assert result.exit_code == 0, result.output
    assert served == [{"host": "127.0.0.1", "port": 9443, "log_level": "info",
                       "ssl_certfile": cert, "ssl_keyfile": key}]


def test_plain_http_without_them(served: list[dict[str, Any]]) -> None:
    assert serve().exit_code == 0
    assert (served[0]["ssl_certfile"], served[0]["ssl_keyfile"]) == (None, None)


def test_one_without_the_other_or_a_missing_file_is_refused(
        tmp_path: Path, served: list[dict[str, Any]]) -> None:
    cert = tmp_path / "host.crt"
    cert.write_text("c")
    result = serve("--tls-cert", str(cert))
    assert result.exit_code == 2
    assert "both or neither" in result.output
    result = serve("--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.key"))
    assert result.exit_code == 2
    assert "--tls-key" in result.output and "no such file" in result.output
    assert served == []
