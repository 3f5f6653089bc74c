"""`corral api serve --tls-cert --tls-key --pki-dir --workers --max-in-flight`: the options
reach uvicorn (every worker's), the certificate and its key both or neither."""

from __future__ import annotations

import json
import os
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from corral.api import serve as api_serve
from corral.api.peer import PeerCertProtocol
from corral.api.serve import SHUTDOWN_GRACE_SECONDS
from corral.api.wire import DEFAULT_MAX_IN_FLIGHT
from corral.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def switch_interval_kept() -> Iterator[None]:
    """Building a served app sets the process's GIL switch interval: not for later tests."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("corral.api.serve.uvicorn.run",
                        lambda app, **kw: calls.append(kw | {"app": app}))
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
    assert [{k: v for k, v in kw.items() if k != "app"} for kw in served] == [
        {"host": "127.0.0.1", "port": 9443, "log_level": "info", "access_log": False,
         "log_config": api_serve.log_config(),
         "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS, "ssl_certfile": cert,
         "ssl_keyfile": key}]


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


def pki(tmp_path: Path) -> Path:
    for name in ("ca.crt", "host.crt", "host.key"):
        (tmp_path / name).write_text(name)
    return tmp_path


def test_the_pki_dir_serves_the_host_certificate_and_asks_for_client_certificates(
        tmp_path: Path, served: list[dict[str, Any]]) -> None:
    result = serve("--pki-dir", str(pki(tmp_path)))
    assert result.exit_code == 0, result.output
    options = served[0]
    assert (options["ssl_certfile"], options["ssl_keyfile"], options["ssl_ca_certs"]) == (
        str(tmp_path / "host.crt"), str(tmp_path / "host.key"), str(tmp_path / "ca.crt"))
    # Asked, not required: a browser or the CLI with a token has none.
    assert options["ssl_cert_reqs"] == ssl.CERT_OPTIONAL
    assert options["http"] is PeerCertProtocol


def test_a_certificate_of_its_own_replaces_the_host_one(
        tmp_path: Path, served: list[dict[str, Any]]) -> None:
    cert, key = tmp_path / "public.crt", tmp_path / "public.key"
    cert.write_text("c")
    key.write_text("k")
    result = serve("--pki-dir", str(pki(tmp_path)), "--tls-cert", str(cert), "--tls-key",
                   str(key))
    assert result.exit_code == 0, result.output
    assert (served[0]["ssl_certfile"], served[0]["ssl_keyfile"]) == (cert, key)
    assert served[0]["ssl_ca_certs"] == str(tmp_path / "ca.crt")


def test_a_pki_dir_without_the_host_files_is_refused(
        short_tmp: Path, served: list[dict[str, Any]]) -> None:
    # A short path: the error is printed in a box 80 columns wide, where a long one would push
    # the file's name onto the next line.
    (short_tmp / "ca.crt").write_text("c")
    result = serve("--pki-dir", str(short_tmp))
    assert result.exit_code == 2
    assert "--pki-dir" in result.output and "host.crt" in result.output
    assert served == []


def test_workers_start_from_the_factory_with_the_tls_options_and_the_settings(
        tmp_path: Path, served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(api_serve.SETTINGS_ENV, "")  # serve's setting is undone after
    result = serve("--pki-dir", str(pki(tmp_path)), "--workers", "2", "--max-in-flight", "7",
                   "--access-log", "all")
    assert result.exit_code == 0, result.output
    options = served[0]
    assert (options["app"], options["factory"], options["workers"]) == (
        api_serve.FACTORY, True, 2)
    assert options["http"] is PeerCertProtocol
    assert options["ssl_certfile"] == str(tmp_path / "host.crt")
    assert options["ssl_cert_reqs"] == ssl.CERT_OPTIONAL
    settings = json.loads(os.environ[api_serve.SETTINGS_ENV])
    assert settings == {"etcd_endpoints": ["http://127.0.0.1:1"],
                        "pki_dir": str(tmp_path.resolve()), "max_in_flight": 7,
                        "access_log": "all"}


def test_a_worker_builds_its_app_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = api_serve.AppSettings(["http://127.0.0.1:1"], None, 3)
    monkeypatch.setenv(api_serve.SETTINGS_ENV, settings.to_json())
    assert api_serve.AppSettings.from_json(settings.to_json()) == settings
    assert api_serve.app_from_env().state.in_flight.limit == 3
    monkeypatch.delenv(api_serve.SETTINGS_ENV)
    with pytest.raises(RuntimeError, match=api_serve.SETTINGS_ENV):
        api_serve.app_from_env()


def test_the_serving_process_hands_the_gil_over_within_a_millisecond() -> None:
    sys.setswitchinterval(0.005)
    api_serve.AppSettings(["http://127.0.0.1:1"]).app()
    assert sys.getswitchinterval() == pytest.approx(api_serve.GIL_SWITCH_SECONDS)
    assert api_serve.GIL_SWITCH_SECONDS <= 0.001


def test_one_process_by_default_with_the_default_bound(served: list[dict[str, Any]]) -> None:
    assert serve().exit_code == 0
    assert "workers" not in served[0]
    assert served[0]["app"].state.in_flight.limit == DEFAULT_MAX_IN_FLIGHT


@pytest.mark.parametrize("option", ["--workers", "--max-in-flight"])
def test_fewer_than_one_is_refused(option: str, served: list[dict[str, Any]]) -> None:
    result = serve(option, "0")
    assert result.exit_code == 2 and option in result.output
    assert served == []
