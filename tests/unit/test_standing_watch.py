"""The agent's watch on its host's standing: it asks only after going without a lease for a
while, stops the agent when the host was dropped, and keeps the notice `cluster status`
shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from corral.agent import standing_watch
from corral.cluster.standing import Verdict
from corral.pki.files import TLSFiles


def answers(monkeypatch: pytest.MonkeyPatch, verdicts: list[Verdict]) -> list[str]:
    asked: list[str] = []

    async def check(node: str, endpoints: Sequence[str], tls: TLSFiles | None) -> Verdict:
        asked.append(node)
        return verdicts.pop(0) if len(verdicts) > 1 else verdicts[0]

    monkeypatch.setattr(standing_watch, "check", check)
    return asked


async def test_a_leaseless_agent_of_a_dropped_host_stops_and_leaves_a_notice(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asked = answers(monkeypatch, [Verdict("unknown", "no leader"),
                                  Verdict("dropped", "the cluster no longer lists n2")])
    with pytest.raises(standing_watch.NotAMember, match="no longer lists n2"):
        await standing_watch.watch("n2", ["https://a:1"], None, tmp_path, lambda: False,
                                   every=0.01, grace=0.05)
    assert len(asked) >= 2  # asked again after a verdict that was no verdict
    notice = standing_watch.read_notice(tmp_path)
    assert notice is not None and "no longer lists n2" in notice.reason
    assert "NO LONGER A MEMBER" in caplog.text


async def test_an_agent_with_its_lease_asks_nobody(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    asked = answers(monkeypatch, [Verdict("dropped", "x")])
    calls = 0

    def leased() -> bool:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise RuntimeError("enough")
        return True

    with pytest.raises(RuntimeError, match="enough"):
        await standing_watch.watch("n2", ["https://a:1"], None, tmp_path, leased, every=0.001,
                                   grace=0.0)
    assert asked == []


async def test_the_hold_ends_once_the_host_is_a_member_and_the_notice_goes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    answers(monkeypatch, [Verdict("dropped", "gone"), Verdict("dropped", "gone"),
                          Verdict("member", "listed")])
    await standing_watch.hold_while_dropped("n2", ["https://a:1"], None, tmp_path, every=0.01)
    assert standing_watch.read_notice(tmp_path) is None
