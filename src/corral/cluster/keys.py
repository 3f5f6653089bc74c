"""The key layout in etcd: every key Corral reads or writes is built here.

/corral/nodes/<node>/info        NodeInfo, static facts (written at agent start)
/corral/nodes/<node>/alive       bound to the host's lease: present while the host is alive
/corral/nodes/<node>/usage       NodeUsage, bound to the lease
/corral/nodes/<node>/recent      RecentUsage: the last minutes of the host and its VMs, bound
                                 to the lease
/corral/nodes/<node>/request     NodeRequest (maintenance and other operator requests)
/corral/nodes/<node>/shutdown    HostShutdown: the host is shutting down cleanly, or did
/corral/vms/<vmid>/config        VMConfig
/corral/vms/<vmid>/placement     Placement: owning host and requested run state
/corral/vms/<vmid>/runtime       VMRuntime, written by the owning agent
/corral/vms/<vmid>/migration     MigrationRecord: how source and target of a migration meet
/corral/names/<name>             vmid: makes VM names unique in one transaction
/corral/storage/<id>             StorageConfig
/corral/tasks/<id>               Task
/corral/auth/tokens/<sha256>     API token (only its hash is stored)
/corral/manager                  manager election key
/corral/ha/<vmid>                HASettings
/corral/ha/rules/<name>          HARule
/corral/ha/fenced/<node>         FenceConfirmation (a fence agent saw the host powered off)
/corral/ha-state                 HAState, the HA manager's own state (outside /corral/ha/)
/corral/ha-config                HAConfig, cluster-wide HA settings (the shutdown policy)
/corral/balance-config           BalanceConfig, the load balancer's settings
/corral/balance-status           BalanceStatus, the balancer's last round (by the manager)
/corral/cluster/info             ClusterInfo: the cluster's name, epoch and CA hash (at create)
/corral/cluster/join-tokens/<id> JoinTokenRecord: a join token, its secret only hashed; the
                                 join that accepts it deletes it in the same transaction
/corral/cluster/hosts/<name>     ClusterHost: a host or witness admitted to the cluster, its
                                 etcd member and URLs (written by the join that admits it)
"""

from __future__ import annotations

PREFIX = "/corral/"
NODES = PREFIX + "nodes/"
VMS = PREFIX + "vms/"
NAMES = PREFIX + "names/"
STORAGE = PREFIX + "storage/"
TASKS = PREFIX + "tasks/"
TOKENS = PREFIX + "auth/tokens/"
MANAGER = PREFIX + "manager"
HA = PREFIX + "ha/"
HA_RULES = HA + "rules/"
HA_FENCED = HA + "fenced/"
HA_STATE = PREFIX + "ha-state"
HA_CONFIG = PREFIX + "ha-config"
BALANCE_CONFIG = PREFIX + "balance-config"
BALANCE_STATUS = PREFIX + "balance-status"  # the last round: written by the manager
CLUSTER = PREFIX + "cluster/"
CLUSTER_INFO = CLUSTER + "info"
JOIN_TOKENS = CLUSTER + "join-tokens/"
CLUSTER_HOSTS = CLUSTER + "hosts/"

NODE_FIELDS = ("info", "alive", "usage", "request", "shutdown", "recent")
VM_FIELDS = ("config", "placement", "runtime", "migration")


def node(name: str, field: str) -> str:
    assert field in NODE_FIELDS, field
    return f"{NODES}{name}/{field}"


def vm(vmid: int, field: str) -> str:
    assert field in VM_FIELDS, field
    return f"{VMS}{vmid}/{field}"


def name(vm_name: str) -> str:
    return NAMES + vm_name


def storage(storage_id: str) -> str:
    return STORAGE + storage_id


def task(task_id: str) -> str:
    return TASKS + task_id


def token(digest: str) -> str:
    return TOKENS + digest


def ha(vmid: int) -> str:
    return f"{HA}{vmid}"


def ha_rule(rule_name: str) -> str:
    return HA_RULES + rule_name


def ha_fenced(node_name: str) -> str:
    return HA_FENCED + node_name


def join_token(token_id: str) -> str:
    return JOIN_TOKENS + token_id


def cluster_host(host_name: str) -> str:
    return CLUSTER_HOSTS + host_name


def split(key: str, prefix: str) -> tuple[str, str]:
    """'/corral/vms/101/config' with prefix VMS -> ('101', 'config')."""
    rest = key[len(prefix) :]
    head, _, tail = rest.partition("/")
    return head, tail
