"""The small pure pieces of serving TLS: the client certificate's CN as ssl gives it, the
uvicorn options of a server of the cluster, and the agent's console endpoint with and without
the host's pki dir."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.agent.main import console_config
from corral.agent.settings import AgentSettings
from corral.api.peer import subject_cn
from corral.cli.main import app
from corral.pki.files import TLSFiles, missing_in_pki_dir

PKI = Path("/etc/corral/pki")


def test_the_cn_of_a_peer_certificate() -> None:
    cert = {"subject": ((("organizationName", "Corral"),), (("commonName", "n1"),)),
            "issuer": ((("commonName", "Corral cluster prod"),),)}
    assert subject_cn(cert) == "n1"
    assert subject_cn(None) is None
    assert subject_cn({}) is None  # what ssl gives when no certificate was shown
    assert subject_cn({"subject": ((("organizationName", "Corral"),),)}) is None
    two = {"subject": ((("commonName", "n1"),), (("commonName", "root"),))}
    assert subject_cn(two) is None  # which of them? none


def test_servers_check_client_certificates_against_the_cluster_ca() -> None:
    files = TLSFiles.in_dir(PKI, "host")
    required = files.uvicorn_kwargs("required")
    assert required == {"ssl_certfile": f"{PKI}/host.crt", "ssl_keyfile": f"{PKI}/host.key",
                        "ssl_ca_certs": f"{PKI}/ca.crt", "ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert files.uvicorn_kwargs("optional")["ssl_cert_reqs"] == ssl.CERT_OPTIONAL


def test_a_pki_dir_lacking_host_files(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("")
    assert missing_in_pki_dir(tmp_path) == [tmp_path / "host.crt", tmp_path / "host.key"]
    (tmp_path / "host.crt").write_text("")
    (tmp_path / "host.key").write_text("")
    assert missing_in_pki_dir(tmp_path) == []


def settings(tls: TLSFiles | None) -> AgentSettings:
    return AgentSettings(node="n1", data_dir=Path("/d"), images_dir=Path("/i"), tls=tls)


def test_the_console_endpoint_requires_a_cluster_certificate_with_tls() -> None:
    tls = TLSFiles.in_dir(PKI, "host")
    config = console_config(settings(tls), object())
    assert config.is_ssl
    assert (config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs) == (
        str(tls.cert), str(tls.key), str(tls.ca))
    assert config.ssl_cert_reqs == ssl.CERT_REQUIRED
    assert settings(tls).scheme == "https"


def test_the_console_endpoint_is_plain_http_without() -> None:
    assert not console_config(settings(None), object()).is_ssl
    assert settings(None).scheme == "http"


def test_agent_run_takes_its_tls_files_from_the_pki_dir(
        short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A short path: the error is printed in a box 80 columns wide, where a long one would push
    # the file's name onto the next line.
    tmp_path = short_tmp
    ran: list[AgentSettings] = []

    async def run(settings: AgentSettings) -> None:
        ran.append(settings)

    monkeypatch.setattr("corral.agent.main.run", run)
    argv = ["agent", "run", "--node", "n1", "--data-dir", str(tmp_path), "--accel", "tcg",
            "--pki-dir", str(tmp_path)]
    (tmp_path / "ca.crt").write_text("")
    refused = CliRunner().invoke(app, argv)
    assert refused.exit_code == 2 and ran == []
    assert "--pki-dir" in refused.output and "host.crt" in refused.output
    (tmp_path / "host.crt").write_text("")
    (tmp_path / "host.key").write_text("")
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert ran[0].tls == TLSFiles.in_dir(tmp_path, "host")
    assert CliRunner().invoke(app, argv[:-2]).exit_code == 0
    assert ran[1].tls is None
