"""The store's client sends a request again when etcd refused it without applying it: a
member unavailable or slow, or a change of etcd's users applied meanwhile (removing a host's
user, as `remove-node` and `leave` do). Any other refusal is the caller's."""

from __future__ import annotations

from typing import Any

import aetcd
import pytest

from corral.cluster.store import _retryable, _RetryingClient

OLD_AUTH = aetcd.exceptions.InvalidArgumentError("etcdserver: revision of auth store is old")


class Flaky:
    """A client whose `put` fails with `errors`, one per call, then answers."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    async def put(self, *args: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.mark.parametrize(("error", "again"), [
    (OLD_AUTH, True),
    (aetcd.exceptions.ConnectionFailedError("unavailable"), True),
    (aetcd.exceptions.InvalidArgumentError("etcdserver: key is not provided"), False),
    (aetcd.exceptions.UnauthenticatedError("etcdserver: invalid auth token"), False),
])
def test_what_is_sent_again(error: Exception, again: bool) -> None:
    assert _retryable(error) is again


async def test_a_request_refused_for_an_old_auth_revision_is_sent_again() -> None:
    flaky = Flaky([OLD_AUTH, OLD_AUTH])
    assert await _RetryingClient(flaky).put(b"k", b"v") == "ok"
    assert flaky.calls == 3


async def test_any_other_refusal_is_raised_at_once() -> None:
    flaky = Flaky([aetcd.exceptions.InvalidArgumentError("etcdserver: key is not provided")])
    with pytest.raises(aetcd.exceptions.InvalidArgumentError):
        await _RetryingClient(flaky).put(b"k", b"v")
    assert flaky.calls == 1
