"""An etcd member's command line: plain (the lab as it was), over mutual TLS, and joining a
running cluster (pure: no process)."""

from __future__ import annotations

from pathlib import Path

from corral.lab.etcd import EtcdMember
from corral.pki.files import TLSFiles

TLS = TLSFiles.in_dir(Path("/etc/corral/pki"))


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_a_plain_member_speaks_http_and_has_no_tls_flags() -> None:
    m = EtcdMember("n1", Path("/d/n1"), 2379, 2380)
    cmd = m.command([m])
    assert flag(cmd, "--listen-client-urls") == "http://127.0.0.1:2379"
    assert flag(cmd, "--initial-cluster") == "n1=http://127.0.0.1:2380"
    assert flag(cmd, "--initial-cluster-state") == "new"
    assert not [a for a in cmd if "cert" in a or "trusted" in a or "key-file" in a]


def test_a_tls_member_has_https_urls_and_requires_client_certificates() -> None:
    m = EtcdMember("n1", Path("/d/n1"), 2379, 2380, host="198.18.0.1", tls=TLS)
    assert (m.client_url, m.peer_url) == ("https://198.18.0.1:2379", "https://198.18.0.1:2380")
    cmd = m.command([m])
    for name in ("--listen-client-urls", "--advertise-client-urls"):
        assert flag(cmd, name) == "https://198.18.0.1:2379"
    for name in ("--listen-peer-urls", "--initial-advertise-peer-urls"):
        assert flag(cmd, name) == "https://198.18.0.1:2380"
    assert "--client-cert-auth" in cmd and "--peer-client-cert-auth" in cmd
    for name in ("--trusted-ca-file", "--peer-trusted-ca-file"):
        assert flag(cmd, name) == "/etc/corral/pki/ca.crt"
    for name in ("--cert-file", "--peer-cert-file"):
        assert flag(cmd, name) == "/etc/corral/pki/host.crt"
    for name in ("--key-file", "--peer-key-file"):
        assert flag(cmd, name) == "/etc/corral/pki/host.key"


def test_a_joining_member_starts_existing_with_the_cluster_it_was_given() -> None:
    m = EtcdMember("n3", Path("/d/n3"), 2379, 2380, host="198.18.0.3", tls=TLS)
    pairs = [("n1", "https://198.18.0.1:2380"), ("n3", m.peer_url)]
    cmd = m.command([], state="existing", initial_cluster=pairs)
    assert flag(cmd, "--initial-cluster-state") == "existing"
    assert flag(cmd, "--initial-cluster") == (
        "n1=https://198.18.0.1:2380,n3=https://198.18.0.3:2380")
