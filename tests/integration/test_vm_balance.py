"""The per-VM load-balancing opt-out: `balance` set at create and changed later, through the
real API (uvicorn in a thread) and the CLI, kept in the VM's config in a real etcd."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from api_thread import serving
from typer.testing import CliRunner, Result

from corral.api.app import create_app
from corral.cli.main import app as cli
from corral.cluster import keys
from corral.cluster.models import NodeInfo, VMConfig
from corral.cluster.store import Store

pytestmark = pytest.mark.integration

TOKEN = "balance-token"


@pytest.fixture(scope="module")
def api_url(etcd_endpoint: str) -> Iterator[str]:
    with serving(create_app([etcd_endpoint])) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def api(store: Store, api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    await store.add_token(TOKEN)
    await store.put(keys.node("n1", "info"), NodeInfo(name="n1", cpus=2, memory_mb=2048))
    await store.client.put(keys.node("n1", "alive").encode(), b"1")
    async with httpx.AsyncClient(base_url=f"{api_url}/api/v1", timeout=30,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def corral(api_url: str, *args: str) -> Result:
    env = {"CORRAL_URL": api_url, "CORRAL_TOKEN": TOKEN, "CORRAL_CONFIG": "/nonexistent"}
    return CliRunner().invoke(cli, list(args), env=env)


async def config(store: Store, vmid: int) -> VMConfig:
    found, _ = await store.get(keys.vm(vmid, "config"), VMConfig)
    assert found is not None
    return found


async def test_balance_round_trips_through_the_api(store: Store,
                                                   api: httpx.AsyncClient) -> None:
    r = await api.post("/vms", json={"vmid": 200, "name": "pinned", "memory_mb": 64,
                                     "cores": 1, "node": "n1", "balance": False})
    assert r.status_code == 202, r.text
    assert (await config(store, 200)).balance is False
    r = await api.post("/vms", json={"vmid": 201, "name": "free", "memory_mb": 64,
                                     "cores": 1, "node": "n1"})
    assert r.status_code == 202, r.text
    assert (await config(store, 201)).balance is True  # the default

    r = await api.get("/vms/200")
    assert r.json()["balance"] is False and r.json()["config"]["balance"] is False
    listed = {v["vmid"]: v["balance"] for v in (await api.get("/vms")).json()}
    assert listed == {200: False, 201: True}

    before = await config(store, 200)
    r = await api.patch("/vms/200/config", json={"balance": True})
    assert r.status_code == 200, r.text
    assert r.json()["balance"] is True
    after = await config(store, 200)
    assert after.balance is True
    assert after.model_dump(exclude={"balance"}) == before.model_dump(exclude={"balance"})


@pytest.mark.parametrize("body, field", [
    ({"balance": "maybe"}, "balance"),
    ({"balance": 1}, "balance"),
    ({"balanse": False}, "balanse"),  # a typo is named, not ignored
    ({"memory_mb": 128}, "memory_mb"),  # not a setting this route changes
    ({}, None),
])
async def test_bad_config_changes_are_refused_naming_the_field_and_change_nothing(
        store: Store, api: httpx.AsyncClient, body: dict[str, Any], field: str | None) -> None:
    r = await api.post("/vms", json={"vmid": 210, "name": "kept", "memory_mb": 64,
                                     "cores": 1, "node": "n1", "balance": False})
    assert r.status_code == 202, r.text
    _, rev = await store.get(keys.vm(210, "config"), VMConfig)
    r = await api.patch("/vms/210/config", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field
    if field is not None:
        assert field in error["message"]
    else:
        assert "nothing to change" in error["message"]
    assert (await store.get(keys.vm(210, "config"), VMConfig))[1] == rev  # not written


async def test_a_config_change_of_a_vm_that_does_not_exist_is_404(
        api: httpx.AsyncClient) -> None:
    r = await api.patch("/vms/999/config", json={"balance": False})
    assert r.status_code == 404 and "999" in r.json()["error"]["message"]


async def test_bad_create_balance_is_refused(api: httpx.AsyncClient, store: Store) -> None:
    r = await api.post("/vms", json={"vmid": 220, "name": "bad", "memory_mb": 64,
                                     "cores": 1, "node": "n1", "balance": "no"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "balance"
    assert await store.vm(220) is None


async def test_the_cli_creates_shows_and_sets_balance(store: Store, api: httpx.AsyncClient,
                                                      api_url: str) -> None:
    async def cli_run(*args: str) -> Result:
        return await asyncio.to_thread(corral, api_url, *args)

    made = await cli_run("vm", "create", "--name", "clipin", "--node", "n1", "--vmid", "230",
                         "--no-balance", "--no-wait", "--json")
    assert made.exit_code == 0, made.output
    assert (await config(store, 230)).balance is False

    shown = await cli_run("vm", "show", "230")
    assert shown.exit_code == 0, shown.output
    assert "balance" in shown.output and "never moves it" in shown.output
    as_json = await cli_run("vm", "show", "230", "--json")
    assert json.loads(as_json.output)["balance"] is False

    changed = await cli_run("vm", "set", "230", "--balance")
    assert changed.exit_code == 0, changed.output
    assert "balance yes" in changed.output
    assert (await config(store, 230)).balance is True
    back = await cli_run("vm", "set", "230", "--no-balance", "--json")
    assert back.exit_code == 0 and json.loads(back.output)["balance"] is False
    assert (await config(store, 230)).balance is False

    nothing = await cli_run("vm", "set", "230")
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    missing = await cli_run("vm", "set", "999", "--no-balance")
    assert missing.exit_code != 0 and "999" in missing.output
