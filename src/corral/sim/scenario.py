"""The scenario format: one statement a line, `#` comments (the comments before the first
statement describe the scenario). Times are seconds on the virtual clock.

Set-up:

    cluster nodes=3 memory=4096 ttl=10 watchdog=5 margin=2 run=60
                 [start-timeout=30] [stable-after=60] [failback-hold=60]
                                             # failback-hold: how long a preferred host
                                             # stays online before its VMs move back
    node n4 [memory=1024] [watchdog=8] [voter=no]
                                             # another host, or other facts for one; its
                                             # watchdog kills its VMs 8 s after the last
                                             # renewal (and it publishes 8); watchdog=0: no
                                             # watchdog, only a confirmed power-off frees
                                             # its VMs; voter=no: it runs no etcd voter
                                             # (only a client of the others')
    witness w                                # an etcd voter with no agent and no VMs
    vm 100 on n1 [memory=512] [stopped] [ha=started|stopped|disabled|ignored]
                 [max-restart=1] [max-relocate=1] [maintenance=migrate|stay|stop]
    rule anti web-apart 101,102              # never on one host
    rule together pair 101,102               # on one host (an affinity rule)
    rule prefer db n1:2,n2:1 vms=101 [strict] [failback=on|off]
                                             # highest priority first; strict: only these
                                             # hosts; failback=off: a VM stays where it
                                             # was recovered when a preferred host returns
    maintenance n3                           # in maintenance from the start
    shutdown-policy freeze|failover|migrate|conditional
                                             # what a clean host shutdown does with its
                                             # VMs (default conditional: freeze on a
                                             # reboot, failover on a power-off)
    bound 30 | off                           # an HA VM may be down this long while some
                                             # host could run it (default: ttl + watchdog
                                             # + margin + 10)
    allow-down 103[,104]                     # no down-time bound for these VMs

The store (etcd) answers a host only while that host reaches a majority of the voters
(every host unless voter=no, and every witness): its own member counts while it runs,
another machine's while neither end is off or cut (cut-store, net-off) and both are on one
side of a partition. With no majority on any side nobody renews a lease and no manager acts;
a host cut off from the majority is a host cut from the store.

Events (`at T ...`); a host may be `all` (the host events) or `leader` (the manager's host):

    at 12 power-off n2 | power-on n2
    at 12 net-off n2 | net-on n2             # every link of the host, both ways
    at 12 cut-store n2                       # n2 no longer reaches etcd, but its peers
    at 12 cut-peers n2                       # n2 reaches etcd, not the other hosts (a
                                             # migration to or from it fails)
    at 12 heal n2                            # every link back (the same as net-on)
    at 12 agent-restart n2 [for=1]           # a new agent process: start-up reconcile
    at 12 agent-freeze n2                    # SIGSTOP: it renews and does nothing
    at 12 agent-thaw n2                      # SIGCONT: the same process continues where
                                             # it stopped, its lease possibly gone
    at 12 fence-confirm n2                   # a fence agent powered it off and says so
    at 12 power-off w | power-on w | net-off w | net-on w | cut-store w | heal w
                                             # a witness too (`all` names the witnesses as
                                             # well for these)
    at 12 partition n1,n2 n3,w               # two sides or more that reach nobody across
                                             # (etcd, migrations); the first side also holds
                                             # every machine not named; `heal n3` brings n3
                                             # back to the first side
    at 12 expected n1 1                      # the override on a lone survivor: the store
                                             # becomes a one-member cluster of n1 in a new
                                             # epoch; every other member is out: the store
                                             # answers none of them (no lease, nothing
                                             # starts) until it rejoins; refused while n1
                                             # reaches a majority (and, the simulator
                                             # having one store, ignored while a majority
                                             # lives out of n1's reach: two clusters); no
                                             # storage is modelled, so HA may recover
                                             # every HA VM on n1
    at 12 rejoin n2                          # an out host or witness joins again, clean
                                             # (its old etcd data wiped): a voter again,
                                             # its agent restarts
    at 12 maintenance n2 on|off
    at 12 shutdown n2 [reboot|poweroff] [back=20] [timeout=120] [stop-timeout=30]
                                             # a clean host shutdown (default poweroff;
                                             # `shutdown 100`, a VM id, is the VM's): its
                                             # agent carries out the cluster's policy
                                             # (migrate: empties the host through
                                             # maintenance, waiting at most timeout= s),
                                             # powers its guests off (one still up after
                                             # stop-timeout= s is stopped hard), marks
                                             # the shutdown done, gives up its lease, and
                                             # the host goes off; a reboot powers on
                                             # back= s later, a power-off waits for
                                             # `power-on`
    at 12 shutdown-policy freeze             # the cluster's setting, for later shutdowns
    at 12 crash 100 | break 100 [on n1] | fix 100 [on n1]   # break: its start fails
    at 12 hang 100 | unhang 100              # its QEMU stops answering QMP, the process
                                             # lives (its host reports it `unknown`; it
                                             # counts as running everywhere, a power
                                             # button does nothing, a hard stop ends it),
                                             # then answers again
    at 12 ha 100 started|stopped|disabled|ignored            # operator, via the API
    at 12 start 100 | shutdown 100 | migrate 100 n3          # operator, via the API (a
                                             # migration the API refuses, for the target
                                             # or because it breaks an HA rule, is logged,
                                             # not queued; a stopped VM migrates cold)
    at 12 rule anti web-apart 101,102        # operator adds a rule, or changes the one of
                                             # that name (any `rule` line, as in set-up)

Expectations, checked at one time (`expect at T`) or at every tick of a window (`expect
during T1 T2 ...`, any of these); `!x` means "anything but x":

    expect at 40 vm 100 running [on n3|on !n2] | vm 100 stopped | vm 100 placed n3
    expect at 40 vm 100 ha error | vm 100 ha !error      # any VM HA status, or none
    expect at 40 node n2 fenced | node n2 !fenced        # any node HA status, or none
    expect at 40 leader n1 | leader !n1
    expect at 40 quorum yes|no               # some side holds a majority of the voters
    expect at 40 quorum n1 yes|no            # the store answers n1 (its `cluster status`)
    expect at 40 member n2 voter|out|client  # in the store's membership (client: voter=no)
    expect during 10 40 node n2 !fenced              # at no tick from 10 to 40
    expect during 10 40 vm 100 never-started-on n2   # no QEMU of VM 100 comes up on n2
    expect during 10 40 vm 100 never-started         # ... nor on any host (windows only)

HA statuses (the manager's, as `corral ha status` shows them):

    VM:   request_start started request_stop stopped fence recovery migrate error
          disabled ignored freeze
    node: online unknown fence fenced maintenance shutdown

Every line is checked when the file is read: an error names the line and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from corral.cluster.models import ShutdownPolicy
from corral.ha.models import HARequest, HARule, NodeStatusHA, VMStatusHA


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Line:
    number: int
    words: list[str]
    opts: dict[str, str]

    def opt(self, key: str, default: str) -> str:
        return self.opts.get(key, default)

    @property
    def text(self) -> str:
        """The statement as written (options after the words)."""
        return " ".join([*self.words, *(f"{k}={v}" for k, v in self.opts.items())])


@dataclass(frozen=True)
class Window:
    """An expectation that must hold at every tick from start to end."""

    start: float
    end: float
    line: Line


@dataclass
class Scenario:
    name: str
    description: str = ""
    setup: list[Line] = field(default_factory=list)
    events: list[tuple[float, Line]] = field(default_factory=list)
    expects: list[tuple[float, Line]] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)


HA_REQUESTS = tuple(r.value for r in HARequest)
# What the manager can say of a VM or a host, and `none` for not (yet) in its HA state.
HA_STATUSES = (*(s.value for s in VMStatusHA), "none")
NODE_STATUSES = (*(s.value for s in NodeStatusHA), "none")
POLICIES = ("migrate", "stay", "stop")
SHUTDOWN_POLICIES = tuple(p.value for p in ShutdownPolicy)
SHUTDOWN_OPTS = ("back", "timeout", "stop-timeout")
HOST_EVENTS = ("power-off", "power-on", "net-off", "net-on", "cut-store", "cut-peers", "heal",
               "agent-restart", "agent-freeze", "agent-thaw", "fence-confirm")
# The host events a witness has too: it is a machine with power and links, and no agent.
MACHINE_EVENTS = ("power-off", "power-on", "net-off", "net-on", "cut-store", "heal")
MEMBER_STATES = ("voter", "out", "client")
RESERVED = ("all", "leader", "nobody")
CLUSTER_OPTS = ("nodes", "memory", "ttl", "watchdog", "margin", "run", "start-timeout",
                "stable-after", "failback-hold")


class _Checker:
    """Reads one statement's words; every complaint names the line."""

    def __init__(self, line: Line, text: str, hosts: set[str],
                 witnesses: set[str] | None = None) -> None:
        self.line, self.text, self.hosts = line, text, hosts
        self.witnesses = witnesses if witnesses is not None else set()

    def error(self, what: str) -> ScenarioError:
        return ScenarioError(f"line {self.line.number}: {what} in '{self.text}'")

    def arity(self, low: int, high: int | None = None) -> None:
        n = len(self.line.words)
        if n < low or n > (low if high is None else high):
            want = f"{low}" if high is None or high == low else f"{low} to {high}"
            raise self.error(f"expected {want} words, found {n}")

    def opts(self, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in self.line.opts:
            if key not in allowed:
                hint = f" (known: {', '.join(allowed)})" if allowed else ""
                raise self.error(f"unknown option '{key}='{hint}")

    def number(self, word: str, what: str, integer: bool = False) -> float:
        try:
            value = int(word) if integer else float(word)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise self.error(f"{what} '{word}' is not {kind}") from None
        if value < 0:
            raise self.error(f"{what} '{word}' is negative")
        return value

    def vmids(self, word: str) -> None:
        for part in word.split(","):
            self.number(part, "VM id", integer=True)

    def host(self, word: str, special: bool = False) -> None:
        name = word[1:] if word.startswith("!") else word
        if special and word in ("all", "leader"):
            return
        if name in self.witnesses:
            raise self.error(f"'{name}' is a witness (no agent, no VMs), not a host")
        if name not in self.hosts:
            raise self.error(f"no host '{name}' (hosts: {', '.join(sorted(self.hosts))})")

    def machine(self, word: str, special: bool = False) -> None:
        """A host or a witness."""
        if special and word == "all" or word in self.witnesses:
            return
        if self.witnesses and word not in self.hosts and word not in ("all", "leader"):
            known = ", ".join(sorted(self.hosts | self.witnesses))
            raise self.error(f"no host or witness '{word}' (known: {known})")
        self.host(word, special)

    def one_of(self, word: str, choices: Iterable[str], what: str, negate: bool = False
               ) -> None:
        value = word[1:] if negate and word.startswith("!") else word
        choices = tuple(choices)
        if value not in choices:
            raise self.error(f"{what} '{word}' is not one of {', '.join(choices)}")

    def option_numbers(self, *keys: str) -> None:
        for key in keys:
            if key in self.line.opts:
                self.number(self.line.opts[key], f"{key}=",
                            integer=key in ("nodes", "memory", "max-restart", "max-relocate"))


def rule_of(ln: Line) -> HARule:
    """The HA rule a checked `rule` line describes."""
    kind, name, what = ln.words[1:4]
    if kind == "prefer":
        nodes = {n: int(p) for n, _, p in (x.partition(":") for x in what.split(","))}
        return HARule(name=name, kind="node-preference", nodes=nodes,
                      vms=[int(v) for v in ln.opts["vms"].split(",")],
                      strict="strict" in ln.words[4:],
                      failback=ln.opts.get("failback", "on") == "on")
    return HARule(name=name, kind="anti-affinity" if kind == "anti" else "affinity",
                  vms=[int(v) for v in what.split(",")])


def _split(number: int, text: str) -> Line:
    words, opts = [], {}
    for w in text.split():
        if "=" in w:
            k, _, v = w.partition("=")
            opts[k] = v
        else:
            words.append(w)
    return Line(number, words, opts)


def _check_rule(c: _Checker) -> None:
    """A `rule` line, in the set-up or as an event (`at T rule ...`)."""
    ln = c.line
    args = ln.words[1:]
    c.arity(4, 5)
    if args[0] in ("anti", "together"):
        c.arity(4)
        c.opts(())
        c.vmids(args[2])
    elif args[0] == "prefer":
        c.opts(("vms", "failback"))
        if "vms" not in ln.opts:
            raise c.error("a prefer rule needs vms=")
        c.vmids(ln.opts["vms"])
        if "failback" in ln.opts:
            c.one_of(ln.opts["failback"], ("on", "off"), "failback=")
        for part in args[2].split(","):
            name, colon, prio = part.partition(":")
            if not colon:
                raise c.error(f"'{part}' is not HOST:PRIORITY")
            c.host(name)
            c.number(prio, "priority", integer=True)
        if len(args) == 4 and args[3] != "strict":
            raise c.error(f"'{args[3]}' is not 'strict'")
    else:
        raise c.error(f"rule kind '{args[0]}' is not anti, together or prefer")
    try:
        rule_of(ln)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise c.error(f"rule {args[1]}: " + (f"{where}: " if where else "")
                      + err["msg"].removeprefix("Value error, ")) from None


def _check_setup(c: _Checker) -> None:
    ln = c.line
    head, args = ln.words[0], ln.words[1:]
    if head == "cluster":
        c.arity(1)
        c.opts(CLUSTER_OPTS)
        c.option_numbers(*CLUSTER_OPTS)
    elif head == "node":
        c.arity(2)
        if args[0] in c.witnesses:
            raise c.error(f"'{args[0]}' is a witness already")
        c.opts(("memory", "watchdog", "voter"))
        c.option_numbers("memory", "watchdog")
        if "voter" in ln.opts:
            c.one_of(ln.opts["voter"], ("yes", "no"), "voter=")
    elif head == "witness":
        c.arity(2)
        c.opts(())
        name = args[0]
        if name in c.hosts or name in c.witnesses:
            raise c.error(f"'{name}' is a {'host' if name in c.hosts else 'witness'} already")
        if name in RESERVED or name.startswith("!") or not name.replace("-", "").isalnum():
            raise c.error(f"'{name}' cannot name a witness")
    elif head == "vm":
        c.arity(4, 5)
        c.number(args[0], "VM id", integer=True)
        if args[1] != "on":
            raise c.error("expected 'vm ID on HOST'")
        c.host(args[2])
        if len(args) == 4 and args[3] != "stopped":
            raise c.error(f"'{args[3]}' is not 'stopped'")
        c.opts(("memory", "ha", "max-restart", "max-relocate", "maintenance"))
        c.option_numbers("memory", "max-restart", "max-relocate")
        if "ha" in ln.opts:
            c.one_of(ln.opts["ha"], HA_REQUESTS, "ha=")
        if "maintenance" in ln.opts:
            c.one_of(ln.opts["maintenance"], POLICIES, "maintenance=")
    elif head == "rule":
        _check_rule(c)
    elif head == "maintenance":
        c.arity(2)
        c.host(args[0])
    elif head == "bound":
        c.arity(2)
        if args[0] != "off":
            c.number(args[0], "bound")
    elif head == "allow-down":
        c.arity(2)
        c.vmids(args[0])
    elif head == "shutdown-policy":
        c.arity(2)
        c.one_of(args[0], SHUTDOWN_POLICIES, "shutdown policy")


def _check_event(c: _Checker) -> None:
    ln = c.line
    verb, args = ln.words[0], ln.words[1:]
    if verb in HOST_EVENTS:
        c.arity(2)
        if verb in MACHINE_EVENTS:
            c.machine(args[0], special=True)
        else:
            c.host(args[0], special=True)
        c.opts(("for",) if verb == "agent-restart" else ())
        c.option_numbers("for")
    elif verb == "maintenance":
        c.arity(3)
        c.host(args[0])
        c.one_of(args[1], ("on", "off"), "maintenance")
    elif verb == "shutdown" and args and not args[0].isdigit():
        _check_host_shutdown(c)
        return
    elif verb == "shutdown-policy":
        c.arity(2)
        c.one_of(args[0], SHUTDOWN_POLICIES, "shutdown policy")
    elif verb in ("crash", "hang", "unhang", "start", "shutdown"):
        c.arity(2)
        c.number(args[0], "VM id", integer=True)
    elif verb in ("break", "fix"):
        c.arity(2, 4)
        c.number(args[0], "VM id", integer=True)
        if len(args) == 2:
            raise c.error(f"expected '{verb} ID [on HOST]'")
        if len(args) == 3:
            if args[1] != "on":
                raise c.error(f"expected '{verb} ID on HOST'")
            c.host(args[2])
    elif verb == "ha":
        c.arity(3)
        c.number(args[0], "VM id", integer=True)
        c.one_of(args[1], HA_REQUESTS, "HA request")
    elif verb == "migrate":
        c.arity(3)
        c.number(args[0], "VM id", integer=True)
        c.host(args[1])
    elif verb == "rule":
        _check_rule(c)
        return
    elif verb == "partition":
        _check_partition(c)
    elif verb == "expected":
        c.arity(3)
        c.host(args[0])
        if args[1] != "1":
            raise c.error(f"expected votes '{args[1]}' is not 1 (the override makes a "
                          "one-member cluster)")
    elif verb == "rejoin":
        c.arity(2)
        c.machine(args[0])
    else:
        raise c.error(f"unknown event '{verb}'")
    if verb not in HOST_EVENTS:
        c.opts(())


def sides_of(ln: Line) -> list[list[str]]:
    """The sides a checked `partition` line names."""
    return [side.split(",") for side in ln.words[1:]]


def _check_partition(c: _Checker) -> None:
    """`partition A,B C ...`: each word a side, its machines (hosts, witnesses) by commas;
    two sides at least."""
    if len(c.line.words) < 3:
        raise c.error("expected 'partition SIDE SIDE [SIDE ...]' (a side: NAME[,NAME...])")
    seen: set[str] = set()
    for side in sides_of(c.line):
        for name in side:
            if not name:
                raise c.error("an empty name in a side")
            c.machine(name)
            if name in seen:
                raise c.error(f"'{name}' is on two sides")
            seen.add(name)


def _check_host_shutdown(c: _Checker) -> None:
    """`shutdown HOST [reboot|poweroff] [back=S] [timeout=S] [stop-timeout=S]` (a VM id
    instead of a host is the operator's VM shutdown)."""
    ln = c.line
    c.arity(2, 3)
    c.host(ln.words[1], special=True)
    kind = ln.words[2] if len(ln.words) > 2 else "poweroff"
    c.one_of(kind, ("reboot", "poweroff"), "shutdown kind")
    c.opts(SHUTDOWN_OPTS)
    c.option_numbers(*SHUTDOWN_OPTS)
    if "back" in ln.opts and kind != "reboot":
        raise c.error("back= is for a reboot (a powered-off host waits for 'power-on')")


def _check_expect(c: _Checker, window: bool) -> None:
    ln = c.line
    what, args = ln.words[0], ln.words[1:]
    c.opts(())
    if what == "vm":
        if len(args) < 2:
            raise c.error("expected 'vm ID CONDITION'")
        c.number(args[0], "VM id", integer=True)
        cond = args[1]
        if not window and cond.startswith("never-started"):
            raise c.error(f"'{cond}' is checked with 'expect during T1 T2'")
        if cond == "running":
            c.arity(3, 5)
            if len(args) > 2:
                if len(args) != 4 or args[2] != "on":
                    raise c.error("expected 'running on HOST'")
                c.host(args[3])
        elif cond == "stopped":
            c.arity(3)
        elif cond == "ha":
            c.arity(4)
            c.one_of(args[2], HA_STATUSES, "HA status", negate=True)
        elif cond in ("placed", "never-started-on"):
            c.arity(4)
            c.host(args[2])
        elif cond == "never-started":
            c.arity(3)
        else:
            raise c.error(f"unknown VM condition '{cond}'")
    elif what == "node":
        c.arity(3)
        c.host(args[0])
        c.one_of(args[1], NODE_STATUSES, "node status", negate=True)
    elif what == "leader":
        c.arity(2)
        if args[0] not in ("nobody", "!nobody"):
            c.host(args[0])
    elif what == "quorum":
        c.arity(2, 3)
        if len(args) == 2:
            c.host(args[0])
        c.one_of(args[-1], ("yes", "no"), "quorum")
    elif what == "member":
        c.arity(3)
        c.machine(args[0])
        c.one_of(args[1], MEMBER_STATES, "member state", negate=True)
    else:
        raise c.error(f"unknown expectation '{what}'")


def parse(text: str, name: str = "scenario") -> Scenario:
    sc = Scenario(name)
    comments: list[str] = []
    hosts: set[str] = set()
    witnesses: set[str] = set()
    voters: dict[str, bool] = {}  # each host and witness: runs an etcd voter
    last_non_voter = 0
    started = False
    for number, raw in enumerate(text.splitlines(), 1):
        body, _, comment = raw.partition("#")
        if not body.strip():
            if comment.strip() and not started:
                comments.append(comment.strip())
            continue
        started = True
        line = _split(number, body)
        head = line.words[0] if line.words else ""
        shown = body.strip()
        c = _Checker(line, shown, hosts, witnesses)
        if head == "at":
            if len(line.words) < 3:
                raise c.error("expected 'at T EVENT'")
            at = c.number(line.words[1], "time")
            ev = Line(number, line.words[2:], line.opts)
            _check_event(_Checker(ev, shown, hosts, witnesses))
            sc.events.append((at, ev))
        elif head == "expect" and len(line.words) >= 3 and line.words[1] == "at":
            at = c.number(line.words[2], "time")
            ex = Line(number, line.words[3:], line.opts)
            if not ex.words:
                raise c.error("nothing to expect")
            _check_expect(_Checker(ex, shown, hosts, witnesses), window=False)
            sc.expects.append((at, ex))
        elif head == "expect" and len(line.words) >= 4 and line.words[1] == "during":
            t1, t2 = c.number(line.words[2], "start"), c.number(line.words[3], "end")
            if t2 < t1:
                raise c.error(f"the window ends ({t2:g}) before it starts ({t1:g})")
            ex = Line(number, line.words[4:], line.opts)
            if not ex.words:
                raise c.error("nothing to expect")
            _check_expect(_Checker(ex, shown, hosts, witnesses), window=True)
            sc.windows.append(Window(t1, t2, ex))
        elif head in ("cluster", "node", "witness", "vm", "rule", "maintenance", "bound",
                      "allow-down", "shutdown-policy"):
            if head != "cluster" and not sc.setup:
                raise c.error("the first statement must be 'cluster'")
            if head == "cluster" and sc.setup:
                raise c.error("a second 'cluster' line")
            _check_setup(c)
            if head == "cluster":
                count = int(c.number(line.opt("nodes", "3"), "nodes=", integer=True))
                hosts.update(f"n{i}" for i in range(1, count + 1))
                last_non_voter = number
                voters.update({f"n{i}": True for i in range(1, count + 1)})
            elif head == "node":
                hosts.add(line.words[1])
                voters[line.words[1]] = line.opt("voter", "yes" if voters.get(
                    line.words[1], True) else "no") == "yes"
                if not voters[line.words[1]]:
                    last_non_voter = number
            elif head == "witness":
                witnesses.add(line.words[1])
                voters[line.words[1]] = True
            sc.setup.append(line)
        else:
            raise c.error("cannot read this line")
    if not sc.setup:
        raise ScenarioError("no `cluster` line")
    if not any(voters.values()):
        raise ScenarioError(f"line {last_non_voter}: no etcd voter is left (every host has "
                            "voter=no and there is no witness)")
    sc.description = " ".join(comments)
    sc.events.sort(key=lambda e: e[0])
    return sc


def load(path: Path) -> Scenario:
    return parse(path.read_text(), path.stem)
