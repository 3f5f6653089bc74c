// The HA page's rule form: what was typed, turned into the body of POST /ha/rules, or the
// field that cannot be read. Pure. The API checks the rest (names, sizes, that VMs and hosts
// exist) and names the field it refuses.

import type { HARule, HARuleKind } from "./types";

export interface RuleForm {
  name: string;
  kind: HARuleKind;
  vms: string; // "100, 101"
  nodes: string; // "n1:2, n2:1" or "n1, n2" (priority 1); node-preference only
  strict: boolean;
  failback: boolean;
}

export type Parsed = { rule: HARule } | { error: string; field: keyof RuleForm };

export function parseRule(f: RuleForm): Parsed {
  const vmWords = f.vms.split(/[\s,]+/).filter(Boolean);
  const bad = vmWords.find((w) => !/^\d+$/.test(w));
  if (bad !== undefined) return { error: `vms: "${bad}" is not a VM id`, field: "vms" };
  const rule: HARule = {
    name: f.name.trim(), kind: f.kind, vms: vmWords.map(Number), nodes: {},
    strict: false, failback: true,
  };
  if (f.kind === "node-preference") {
    for (const w of f.nodes.split(/[\s,]+/).filter(Boolean)) {
      const m = /^([^:]+)(?::(\d+))?$/.exec(w);
      if (!m) return { error: `nodes: "${w}" is not host or host:priority`, field: "nodes" };
      rule.nodes[m[1]!] = m[2] === undefined ? 1 : Number(m[2]);
    }
    rule.strict = f.strict;
    rule.failback = f.failback;
  }
  return { rule };
}
