"""The scenario format: one statement a line, `#` comments.

    cluster nodes=3 memory=4096 ttl=10 watchdog=5 margin=2 run=60
    node n4 memory=1024                      # another host (or other memory for one)
    vm 100 on n1 [memory=512] [stopped] [ha=started|stopped|disabled|ignored]
                 [max-restart=1] [max-relocate=1]
    rule anti web-apart 101,102
    rule prefer db n1:2,n2:1 vms=101 [strict]
    maintenance n3                           # in maintenance from the start
    bound 30                                 # an HA VM may be down this long (default:
                                             # ttl + watchdog + margin + 10)
    allow-down 103                           # no down-time bound for this VM
    at 12 power-off n2 | power-on n2 | net-off n2|all | net-on n2|all
    at 12 agent-restart n2 [for=1] | agent-freeze n2 | fence-confirm n2
    at 12 maintenance n2 on|off | crash 100 | break 100 [on n1] | fix 100
    at 12 ha 100 started|stopped|... | start 100 | shutdown 100   # operator, via the API
    at 12 power-off leader                   # `leader` names the current manager host
    expect at 40 vm 100 running [on n3|on !n2] | vm 100 stopped | vm 100 ha error
    expect at 40 vm 100 placed n3 | node n2 fenced | leader !n1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Line:
    number: int
    words: list[str]
    opts: dict[str, str]

    def opt(self, key: str, default: str) -> str:
        return self.opts.get(key, default)


@dataclass
class Scenario:
    name: str
    description: str = ""
    setup: list[Line] = field(default_factory=list)
    events: list[tuple[float, Line]] = field(default_factory=list)
    expects: list[tuple[float, Line]] = field(default_factory=list)


def _split(number: int, text: str) -> Line:
    words, opts = [], {}
    for w in text.split():
        if "=" in w:
            k, _, v = w.partition("=")
            opts[k] = v
        else:
            words.append(w)
    return Line(number, words, opts)


def _time(number: int, word: str) -> float:
    try:
        return float(word)
    except ValueError:
        raise ScenarioError(f"line {number}: '{word}' is not a time in seconds") from None


def parse(text: str, name: str = "scenario") -> Scenario:
    sc = Scenario(name)
    comments: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        body, _, comment = raw.partition("#")
        if not body.strip():
            if comment.strip() and not sc.setup:
                comments.append(comment.strip())
            continue
        line = _split(number, body)
        head = line.words[0]
        if head == "at" and len(line.words) >= 3:
            sc.events.append((_time(number, line.words[1]),
                              Line(number, line.words[2:], line.opts)))
        elif head == "expect" and len(line.words) >= 4 and line.words[1] == "at":
            sc.expects.append((_time(number, line.words[2]),
                               Line(number, line.words[3:], line.opts)))
        elif head in ("cluster", "node", "vm", "rule", "maintenance", "bound", "allow-down"):
            sc.setup.append(line)
        else:
            raise ScenarioError(f"line {number}: cannot read '{body.strip()}'")
    sc.description = " ".join(comments)
    sc.events.sort(key=lambda e: e[0])
    return sc


def load(path: Path) -> Scenario:
    return parse(path.read_text(), path.stem)
