// `npm run bench -- prove`: wall time of the full proof gate (compile, every
// non-escalation / invariant / hygiene query in cvc5, counterexample re-checks)
// on the bundled policies and on generated sets of 100 and 500 policies.
// Baseline, same run: what merely loading costs — cedar-wasm parsing the same
// policy sets plus starting cvc5 once.
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { splitPolicies } from '../cedar/policy-set.js';
import { readPolicyDir, type PolicySource } from '../pipeline/policy-source.js';
import { runGate } from '../pipeline/prove/gate.js';

export const summary =
  'proof gate wall time: bundled policies, 100 and 500 generated policies (targets: bundled ≤ 2 s, 500 generated ≤ 15 s)';

const POLICIES = resolve(dirname(fileURLToPath(import.meta.url)), '../../policies');

/** Deterministic PRNG so every run proves the same sets. */
function rng(seed: number) {
  let s = seed;
  const next = () => {
    let t = (s += 0x6d2b79f5);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)] };
}

const MCP_TOOLS = [
  'read_file',
  'list_directory',
  'search_docs',
  'fetch_report',
  'write_file',
  'run_command',
  'http_post',
  'send_email',
  'call_tool',
];
const HTTP = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'];
const ZONES = ['approved-mcp', 'internal', 'allowlisted', 'partners', 'sandbox'];
const GROUPS = ['coding', 'readers', 'ops', 'research'];
const LABELS = ['PII', 'FINANCIAL', 'UNTRUSTED', 'CREDENTIALS', 'SOURCE_CODE'];

/** `n` realistic policies over the bundled schema (each with its own @id), appended to the bundled set. */
export function generatedSet(n: number, seed = 7): Record<string, string> {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.pick(['mcp', 'mcp', 'http', 'connect', 'dns', 'forbid']);
    const principal = r.next() < 0.5 ? 'principal' : `principal in AgentGroup::"${r.pick(GROUPS)}"`;
    let text: string;
    if (kind === 'mcp') {
      const tool = r.pick(MCP_TOOLS);
      const cond = r.pick([
        `!context.taint.contains("${r.pick(LABELS)}")`,
        `context.arguments has path && context.arguments.path like "/${r.pick(['workspace', 'tmp', 'data', 'srv'])}/*"`,
        `context.tool == "${tool}"`,
        `context.data_touched == 0`,
        `context.arguments has command && !(context.arguments.command like "*${r.pick(['curl', 'wget', 'nc', 'ssh'])}*")`,
      ]);
      text = `permit (${principal}, action == Action::"${tool}", resource in Zone::"${r.pick(ZONES)}")\nwhen { ${cond} };`;
    } else if (kind === 'http') {
      const ms = [r.pick(HTTP), r.pick(HTTP)];
      text = `permit (${principal}, action in [Action::"${ms[0]}", Action::"${ms[1]}"], resource in Zone::"${r.pick(ZONES)}")\nwhen { !context.host_mismatch && context.path like "/${r.pick(['api', 'v1', 'static', 'docs'])}/*" && context.port == ${r.pick([80, 443, 8080])} };`;
    } else if (kind === 'connect') {
      text = `permit (${principal}, action == Action::"connect", resource in Zone::"${r.pick(ZONES)}")\nwhen { context.port >= ${r.pick([443, 1024, 5432, 8000])} && context.port < ${r.pick([9000, 10000, 65536])} };`;
    } else if (kind === 'dns') {
      text = `permit (${principal}, action == Action::"dns_resolve", resource in Zone::"${r.pick(ZONES)}")\nwhen { ["A", "AAAA"].contains(context.qtype) };`;
    } else {
      text = `forbid (${principal}, action in Action::"${r.pick(['egress', 'read', 'tools/call', 'http'])}", resource)\nwhen { context.taint.contains("${r.pick(LABELS)}") };`;
    }
    out.push(`@id("gen-${i}")\n${text}\n`);
  }
  return { 'generated.cedar': out.join('\n') };
}

function withPolicies(src: PolicySource, extra: Record<string, string>): PolicySource {
  return { ...src, policies: { ...src.policies, ...extra } };
}

/** The same set with one permit widened: the gate must find and re-check the escalation. */
function widened(src: PolicySource): PolicySource {
  const egress = src.policies['egress.cedar'].replace('context.protocol == "tls" && context.port == 443', 'context.protocol == "tls"');
  return { ...src, policies: { ...src.policies, 'egress.cedar': egress } };
}

/** CPU seconds of this process plus its waited-for children (cvc5), from /proc/self/stat. */
function cpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14-17 (utime, stime, cutime, cstime) are at 11..14 after the command name.
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

async function time<T>(f: () => Promise<T>): Promise<{ ms: number; cpu: number; value: T }> {
  const t = performance.now();
  const c = cpuSeconds();
  const value = await f();
  return { ms: performance.now() - t, cpu: cpuSeconds() - c, value };
}

export async function run(_argv: string[]): Promise<void> {
  const bundled = await readPolicyDir(POLICIES);
  const sets: [string, PolicySource][] = [
    ['bundled', bundled],
    ['100 generated', withPolicies(bundled, generatedSet(100))],
    ['500 generated', withPolicies(bundled, generatedSet(500))],
  ];
  const cvc5Start = await time(() => execa('cvc5', ['--version']));
  process.stdout.write(
    `baseline: cvc5 process start ${cvc5Start.ms.toFixed(0)} ms (load average ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cpus: wall times stretch with load, cpu = node + cvc5)\n`,
  );
  for (const [name, src] of sets) {
    const parse = await time(async () => splitPolicies(src.policies).length);
    const same = await time(() => runGate({ label: 'base', source: src }, { label: 'head', source: src }));
    const changed = await time(() => runGate({ label: 'base', source: src }, { label: 'head', source: widened(src) }));
    const r = same.value.report;
    process.stdout.write(
      `${name.padEnd(14)} ${String(parse.value).padStart(4)} policies | baseline parse ${parse.ms.toFixed(0).padStart(5)} ms` +
        ` | gate (no change) ${(same.ms / 1000).toFixed(2).padStart(6)} s wall ${same.cpu.toFixed(2)} s cpu, ${same.value.queries} queries, ${r.warnings.length} warnings, verdict ${r.verdict}` +
        ` | gate (widened permit) ${(changed.ms / 1000).toFixed(2).padStart(6)} s wall ${changed.cpu.toFixed(2)} s cpu, ${changed.value.report.escalations.length} re-checked counterexamples` +
        ` | compile ${same.value.timings.compileMs.toFixed(0)} ms, solve ${same.value.timings.solveMs.toFixed(0)} ms\n`,
    );
  }
  process.stdout.write('targets: bundled gate ≤ 2 s, 500 generated ≤ 15 s (wall)\n');
}
