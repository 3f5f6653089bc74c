"""Client config lookup and error reasons, without a server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest
import typer

from corral.cli.client import (
    Api,
    ClientConfig,
    error_reason,
    load_client_config,
    write_client_config,
)


def test_written_config_is_private_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sub" / "client.json"
    monkeypatch.setenv("CORRAL_CONFIG", str(path))
    monkeypatch.delenv("CORRAL_URL", raising=False)
    monkeypatch.delenv("CORRAL_TOKEN", raising=False)
    assert write_client_config("http://127.0.0.1:8470", "s3cret") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"url": "http://127.0.0.1:8470", "token": "s3cret"}
    assert load_client_config() == ClientConfig("http://127.0.0.1:8470", "s3cret")
    monkeypatch.setenv("CORRAL_URL", "http://other:1")
    assert load_client_config() == ClientConfig("http://other:1", "s3cret")


def test_missing_config_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.delenv("CORRAL_URL", raising=False)
    monkeypatch.delenv("CORRAL_TOKEN", raising=False)
    with pytest.raises(typer.Exit) as exc:
        load_client_config()
    assert exc.value.exit_code == 1


def test_error_reason_names_the_field() -> None:
    body = {"error": {"code": "conflict", "message": "VM 101 already exists", "field": "vmid"}}
    assert error_reason(httpx.Response(409, json=body)) == "vmid: VM 101 already exists"
    body["error"]["message"] = "vmid: too small"
    assert error_reason(httpx.Response(422, json=body)) == "vmid: too small"
    assert error_reason(httpx.Response(500, text="boom")) == "HTTP 500 Internal Server Error"


def test_url_may_carry_the_api_prefix() -> None:
    api = Api(ClientConfig("http://h:1/api/v1/", "t"))
    assert api.url == "http://h:1"
    assert str(api.http.base_url) == "http://h:1/api/v1/"
