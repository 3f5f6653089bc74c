"""Client config lookup and error reasons, without a server."""

from __future__ import annotations

import json
import ssl
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
    shed,
    tls_failure,
    tls_reason,
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


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "client.json"
    monkeypatch.setenv("CORRAL_CONFIG", str(path))
    for name in ("CORRAL_URL", "CORRAL_TOKEN", "CORRAL_CA"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_a_pinned_ca_is_written_and_read_back(config_file: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ca = config_file.parent / "ca.crt"
    write_client_config("https://10.0.0.1:8470", "s3cret", ca=ca)
    assert json.loads(config_file.read_text())["ca"] == str(ca)
    assert load_client_config() == ClientConfig("https://10.0.0.1:8470", "s3cret", ca)
    monkeypatch.setenv("CORRAL_CA", "/elsewhere/ca.crt")  # the environment wins
    assert load_client_config().ca == Path("/elsewhere/ca.crt")


def test_a_pinned_ca_with_a_plain_url_is_refused(config_file: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    write_client_config("http://10.0.0.1:8470", "s3cret", ca=config_file.parent / "ca.crt")
    with pytest.raises(typer.Exit):
        load_client_config()
    assert "is not https" in capsys.readouterr().err


def test_a_pinned_ca_that_cannot_be_read_is_named(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit):
        Api(ClientConfig("https://h:1", "t", tmp_path / "absent.crt"))
    assert f"pinned CA certificate {tmp_path / 'absent.crt'}" in capsys.readouterr().err


def test_the_tls_error_behind_a_connection_error() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    outer = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    middle = OSError("wrapped")
    middle.__cause__ = verify
    outer.__cause__ = middle
    assert tls_failure(outer) is verify
    assert tls_failure(httpx.ConnectError("connection refused")) is None
    pinned_ca = tls_reason("https://h:1", Path("/ca.crt"), verify)
    assert "not trusted" in pinned_ca and "pinned CA /ca.crt" in pinned_ca
    assert "unable to get local issuer certificate" in pinned_ca
    assert "pin the cluster's CA" in tls_reason("https://h:1", None, verify)


def overloaded(retry_after: str = "1") -> httpx.Response:
    return httpx.Response(503, headers={"Retry-After": retry_after}, json={
        "error": {"code": "overloaded", "message": "full", "field": None}})


def test_a_request_an_overloaded_api_refused_is_sent_again_after_its_retry_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [overloaded("2"), overloaded("bogus"), httpx.Response(200, json={"ok": 1})]
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return replies.pop(0)

    waits: list[float] = []
    monkeypatch.setattr("corral.cli.client.time.sleep", waits.append)
    api = Api(ClientConfig(url="http://h:1", token="t"))
    api.http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://h:1")
    assert api.post("/vms", {"name": "a"}) == {"ok": 1}  # refused unserved: safe to resend
    assert (sent, waits) == (["POST"] * 3, [2.0, 1.0])


def test_only_an_overload_refusal_is_retried() -> None:
    down = httpx.Response(503, json={"error": {"code": "store_unavailable", "message": "x",
                                               "field": None}})
    assert shed(down) is None
    assert shed(httpx.Response(503, text="not json")) is None
    assert shed(overloaded("600")) == 5.0  # capped: a CLI does not hang on a header
    assert shed(httpx.Response(200, json=[])) is None


def test_an_api_that_stays_overloaded_ends_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("corral.cli.client.time.sleep", lambda _: None)
    sent: list[int] = []

    def answer(_: httpx.Request) -> httpx.Response:
        sent.append(1)
        return overloaded()

    api = Api(ClientConfig(url="http://h:1", token="t"))
    api.http = httpx.Client(transport=httpx.MockTransport(answer), base_url="http://h:1")
    with pytest.raises(typer.Exit):
        api.get("/vms")
    assert len(sent) == 6  # the first try and five more
