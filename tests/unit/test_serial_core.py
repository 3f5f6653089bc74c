"""The serial console's decisions over plain bytes: the tail a new watcher sees, a slow
watcher's bounded backlog, close reasons that fit a frame, keystrokes from either frame kind,
and the URLs and escape key of the relay and the CLI."""

from __future__ import annotations

import pytest

from corral.api.routes_console import agent_ws_url
from corral.cli.serial_console import until_escape, ws_url
from corral.serial import core


def test_a_cut_tail_starts_at_a_whole_line() -> None:
    assert core.whole_lines(b"beat 1\r\nbeat 2\r\n", cut=False) == b"beat 1\r\nbeat 2\r\n"
    assert core.whole_lines(b"at 1\r\nbeat 2\r\n", cut=True) == b"beat 2\r\n"
    assert core.whole_lines(b"one long line without end", cut=True) == (
        b"one long line without end")


def test_recent_output_keeps_the_last_bytes_from_a_whole_line() -> None:
    recent = core.Recent(b"boot\r\n", limit=16)
    assert recent.tail() == b"boot\r\n"
    recent.add(b"beat 1\r\n")
    assert recent.tail() == b"boot\r\nbeat 1\r\n"
    recent.add(b"beat 2\r\n")  # 22 bytes seen, 16 kept: "t 1\r\nbeat 2\r\n"...
    assert recent.tail() == b"beat 2\r\n"
    assert core.Recent(b"x" * 40, limit=16).tail() == b"x" * 16  # no line to start at


def test_a_backlog_says_when_its_watcher_is_too_slow() -> None:
    backlog = core.Backlog(limit=10)
    assert backlog.push(b"12345") and backlog.push(b"67890")
    assert not backlog.push(b"!")  # over the limit: the watcher is dropped
    assert backlog.take() == b"1234567890!"
    assert not backlog and backlog.size == 0
    assert backlog.push(b"") and not backlog


def test_a_close_reason_is_cut_to_what_a_frame_holds() -> None:
    long = core.Close(core.ENDED, "é" * 100)  # 200 bytes of UTF-8
    clipped = long.clipped()
    assert len(clipped.reason.encode()) <= core.MAX_REASON_BYTES
    assert clipped.reason == "é" * 61 and clipped.code == core.ENDED
    short = core.not_running_here(100, "n1")
    assert short.clipped() is short and "100" in short.reason and "n1" in short.reason


def test_keystrokes_come_from_text_or_binary_frames() -> None:
    assert core.input_bytes("ls\r", None) == b"ls\r"
    assert core.input_bytes("é", None) == "é".encode()
    assert core.input_bytes(None, b"\x03") == b"\x03"
    assert core.input_bytes(None, None) == b""


def test_websocket_urls_follow_the_scheme() -> None:
    assert agent_ws_url("http://10.0.0.1:9000/", 7) == "ws://10.0.0.1:9000/vms/7/console/ws"
    assert agent_ws_url("https://h:1", 7) == "wss://h:1/vms/7/console/ws"
    with pytest.raises(ValueError, match="ftp"):
        agent_ws_url("ftp://h", 7)
    assert ws_url("https://api:8470/api/v1", 100) == "wss://api:8470/api/v1/vms/100/console/ws"
    assert ws_url("http://api:8470", 100) == "ws://api:8470/api/v1/vms/100/console/ws"


def test_ctrl_close_bracket_leaves_and_what_came_before_is_sent() -> None:
    assert until_escape(b"ls\r") == (b"ls\r", False)
    assert until_escape(b"ab\x1dcd") == (b"ab", True)
    assert until_escape(b"\x1d") == (b"", True)
