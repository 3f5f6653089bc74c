"""etcd's own authentication: who may read and write what.

With client certificate authentication and auth on, etcd takes a client certificate's CN as
the user name, so users have no password:
- "root" (root role): the admin certificate of full hosts: membership, users and roles;
- one user per host, named as the host, with role "corral-host": read and write /corral/;
- "witness-<name>" for a witness: no role, no key at all (it only votes).
Roles are per key prefix: that is as fine as etcd allows.

Every step is idempotent, so setting up again (after a crash half-way) only adds what is
missing. All of it needs the root certificate once auth is on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from aetcd import rpc
from aetcd.utils import prefix_range_end

from corral.cluster import keys
from corral.cluster.store import Store

ROOT = "root"
HOST_ROLE = "corral-host"
RPC_TIMEOUT = 5.0


class AuthSetupError(RuntimeError):
    """etcd refused a step of the auth setup; the message names the step and etcd's reason."""


def witness_user(name: str) -> str:
    return f"witness-{name}"


def _stub(store: Store) -> Any:
    return rpc.AuthStub(store.client.channel)


async def _call(method: Any, request: Any, what: str) -> Any:
    try:
        return await method(request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as e:
        raise AuthSetupError(f"etcd auth: {what}: {e.details()}") from e


async def _users(store: Store) -> set[str]:
    reply = await _call(_stub(store).UserList, rpc.AuthUserListRequest(), "list users")
    return set(reply.users)


async def _roles(store: Store) -> set[str]:
    reply = await _call(_stub(store).RoleList, rpc.AuthRoleListRequest(), "list roles")
    return set(reply.roles)


async def _ensure_user(store: Store, name: str, role: str | None, existing: set[str]) -> None:
    auth = _stub(store)
    if name not in existing:
        # No password: only a certificate of the cluster CA with this CN is this user.
        await _call(auth.UserAdd, rpc.AuthUserAddRequest(
            name=name, options=rpc.UserAddOptions(no_password=True)), f"add user {name}")
        existing.add(name)
    if role is not None:  # granting a role the user has is a no-op in etcd
        await _call(auth.UserGrantRole, rpc.AuthUserGrantRoleRequest(user=name, role=role),
                    f"grant role {role} to {name}")


async def _ensure_roles(store: Store) -> None:
    auth = _stub(store)
    roles = await _roles(store)
    for role in (ROOT, HOST_ROLE):
        if role not in roles:
            await _call(auth.RoleAdd, rpc.AuthRoleAddRequest(name=role), f"add role {role}")
    prefix = keys.PREFIX.encode()
    await _call(auth.RoleGrantPermission, rpc.AuthRoleGrantPermissionRequest(
        name=HOST_ROLE, perm=rpc.Permission(permType=rpc.Permission.READWRITE, key=prefix,
                                            range_end=prefix_range_end(prefix))),
        f"grant {HOST_ROLE} readwrite on {keys.PREFIX}")


async def setup(store: Store, hosts: Iterable[str] = (), witnesses: Iterable[str] = ()) -> None:
    """Users and roles for these hosts and witnesses, then auth on. `store` must present the
    root certificate (CN "root"): once auth is on, it is the only one allowed to do this."""
    await _ensure_roles(store)
    users = await _users(store)
    await _ensure_user(store, ROOT, ROOT, users)
    for host in hosts:
        await _ensure_user(store, host, HOST_ROLE, users)
    for witness in witnesses:
        await _ensure_user(store, witness_user(witness), None, users)
    # etcd enables auth only with a root user of role root; enabling it again is a no-op.
    await _call(_stub(store).AuthEnable, rpc.AuthEnableRequest(), "enable auth")


async def add_host(store: Store, host: str) -> None:
    """A user for a host that joins (root certificate needed)."""
    await _ensure_user(store, host, HOST_ROLE, await _users(store))


async def add_witness(store: Store, name: str) -> None:
    await _ensure_user(store, witness_user(name), None, await _users(store))


async def remove_user(store: Store, name: str) -> None:
    """Forget a removed host's (or witness's) user; its certificate then gets nothing."""
    if name in await _users(store):
        await _call(_stub(store).UserDelete, rpc.AuthUserDeleteRequest(name=name),
                    f"delete user {name}")
