// `npm run bench -- decide [--seconds N] [--set WORD]`: decisions/s and p50/p99 latency of the
// compiled engine and of cedar-wasm (stateful, preparsed: WasmAuthorizer) on the
// bundled policy set and on a generated 1,000-policy set, measured in one run.
import '../cedar/fast/v8-flags.js';
import { FastAuthorizer } from '../cedar/fast/fast-authorizer.js';
import { WasmAuthorizer } from '../cedar/wasm-authorizer.js';
import type { Authorizer, AuthzRequest, Entity, PolicyBundle } from '../cedar/types.js';
import { readPolicyDir, toBundle } from '../pipeline/policy-source.js';

export const summary = 'Cedar decisions: compiled engine vs cedar-wasm (throughput, p50/p99 latency)';

const LABELS = ['PII', 'FINANCIAL', 'UNTRUSTED', 'CREDENTIALS', 'SOURCE_CODE'];

function taint(mask: number): { taint: string[]; data_touched: number } {
  return { taint: LABELS.filter((_l, i) => mask & (1 << i)), data_touched: mask };
}

function agent(id: string, groups: string[]): Entity {
  return {
    uid: { type: 'Agent', id: `spiffe://corp.example/agents/${id}` },
    attrs: {},
    parents: groups.map((g) => ({ type: 'AgentGroup', id: g })),
  };
}

/** The dataplane's request mix: MCP tools, HTTP, connects, DNS; with the agent entity, as enforcer/proxy/decide.ts sends it. */
function dataplaneRequests(hosts: string[], servers: string[]): AuthzRequest[] {
  const agents = [agent('coder', ['coding']), agent('reader', ['readers'])];
  const out: AuthzRequest[] = [];
  let n = 0;
  for (const a of agents) {
    for (const mask of [0, 1, 4, 8]) {
      const base = { principal: a.uid, entities: [a] };
      const server = { type: 'MCPServer', id: servers[n++ % servers.length] };
      const host = { type: 'Host', id: hosts[n++ % hosts.length] };
      out.push({
        ...base,
        action: { type: 'Action', id: 'read_file' },
        resource: server,
        context: { ...taint(mask), tool: 'read_file', arguments: { path: '/workspace/src/main.ts' } },
      });
      out.push({
        ...base,
        action: { type: 'Action', id: 'write_file' },
        resource: server,
        context: { ...taint(mask), tool: 'write_file', arguments: { path: '/workspace/src/main.ts' } },
      });
      out.push({
        ...base,
        action: { type: 'Action', id: 'run_command' },
        resource: server,
        context: { ...taint(mask), tool: 'run_command', arguments: { command: 'npm test' } },
      });
      out.push({
        ...base,
        action: { type: 'Action', id: 'http_post' },
        resource: server,
        context: { ...taint(mask), tool: 'http_post', arguments: { url: 'https://x.example' } },
      });
      out.push({
        ...base,
        action: { type: 'Action', id: 'GET' },
        resource: host,
        context: { ...taint(mask), method: 'GET', path: '/api/v1/x', port: 443, tls: true, host_mismatch: false },
      });
      out.push({
        ...base,
        action: { type: 'Action', id: 'POST' },
        resource: host,
        context: { ...taint(mask), method: 'POST', path: '/api/v1/x', port: 443, tls: true, host_mismatch: false, content_length: 120 },
      });
      out.push({
        ...base,
        action: { type: 'Action', id: 'connect' },
        resource: host,
        context: { ...taint(mask), protocol: 'tls', ip: '140.82.112.3', port: 443, sni: host.id },
      });
      out.push({ ...base, action: { type: 'Action', id: 'dns_resolve' }, resource: host, context: { ...taint(mask), qtype: 'A' } });
    }
  }
  return out;
}

/** 1,000 policies over the bundled schema: per-host/per-group permits and forbids, as a large fleet's repository might hold. */
function generatedBundle(base: PolicyBundle): { bundle: PolicyBundle; hosts: string[]; servers: string[] } {
  const entities: Entity[] = [...base.entities];
  const hosts: string[] = [];
  const servers: string[] = [];
  const policies: string[] = [];
  const http = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
  const tools = ['read_file', 'write_file', 'list_directory', 'search_docs', 'run_command', 'http_post', 'send_email'];
  for (let i = 0; i < 100; i++) {
    hosts.push(`svc${i}.corp.example`);
    entities.push({
      uid: { type: 'Host', id: `svc${i}.corp.example` },
      attrs: {},
      parents: [{ type: 'Zone', id: i % 2 ? 'internal' : 'allowlisted' }],
    });
    servers.push(`mcp${i}`);
    entities.push({ uid: { type: 'MCPServer', id: `mcp${i}` }, attrs: {}, parents: [{ type: 'Zone', id: 'approved-mcp' }] });
  }
  for (let i = 0; policies.length < 1000; i++) {
    const h = hosts[i % hosts.length];
    const s = servers[i % servers.length];
    switch (i % 5) {
      case 0:
        policies.push(
          `@id("gen-${i}") permit (principal in AgentGroup::"coding", action == Action::"${http[i % http.length]}", resource == Host::"${h}") when { context.path like "/api/v${i % 3}/*" && !context.host_mismatch };`,
        );
        break;
      case 1:
        policies.push(
          `@id("gen-${i}") forbid (principal, action in Action::"egress", resource == Host::"${h}") when { context.taint.contains("${LABELS[i % LABELS.length]}") };`,
        );
        break;
      case 2:
        policies.push(
          `@id("gen-${i}") permit (principal, action == Action::"${tools[i % tools.length]}", resource == MCPServer::"${s}") when { context.arguments has path && context.arguments.path like "/workspace/*" };`,
        );
        break;
      case 3:
        policies.push(
          `@id("gen-${i}") permit (principal, action == Action::"connect", resource == Host::"${h}") when { context.port == ${443 + (i % 3)} && context.protocol == "tls" };`,
        );
        break;
      case 4:
        policies.push(
          `@id("gen-${i}") forbid (principal in AgentGroup::"readers", action in [Action::"write_file", Action::"run_command"], resource == MCPServer::"${s}") unless { context.data_touched == 0 };`,
        );
        break;
    }
  }
  return {
    bundle: { policies: { ...base.policies, 'generated.cedar': policies.join('\n') }, schema: base.schema, entities },
    hosts,
    servers,
  };
}

/**
 * Cedar 4.x features in one set: a schema namespace, an enumerated entity type,
 * entity tags and the datetime extension (datetime/duration attributes, a
 * datetime in the request context, offset/durationSince/toTime/toDays).
 */
export function featureSet(): { bundle: PolicyBundle; reqs: AuthzRequest[] } {
  const schema = `namespace Corp {
  entity Tier enum ["gold", "silver", "bronze"];
  entity Team;
  entity User in [Team] { tier: Tier, hired: datetime };
  entity Doc { owner: User, created: datetime, ttl: duration } tags String;
  action read, edit appliesTo { principal: User, resource: Doc, context: { now: datetime, tier: Tier } };
}`;
  const policies = `
@id("team-reads-public") permit (principal in Corp::Team::"eng", action == Corp::Action::"read", resource is Corp::Doc)
  when { resource.hasTag("visibility") && resource.getTag("visibility") == "public" };
@id("owner-edits-until-expiry") permit (principal, action == Corp::Action::"edit", resource)
  when { resource.owner == principal && context.now < resource.created.offset(resource.ttl) };
@id("seniors-read-in-office-hours") permit (principal, action == Corp::Action::"read", resource)
  when { principal.hired.durationSince(datetime("2020-01-01")).toDays() > 365 && context.now.toTime() < duration("18h") };
@id("bronze-not-restricted") forbid (principal, action, resource)
  when { context.tier == Corp::Tier::"bronze" && resource.hasTag("restricted") };
@id("no-backdating") forbid (principal, action, resource) unless { context.now > datetime("2024-01-01T00:00:00Z") };
`;
  const entities: Entity[] = [
    { uid: { type: 'Corp::Team', id: 'eng' }, attrs: {}, parents: [] },
    { uid: { type: 'Corp::Team', id: 'ops' }, attrs: {}, parents: [] },
  ];
  const users: Entity['uid'][] = [];
  const docs: Entity['uid'][] = [];
  const tiers = ['gold', 'silver', 'bronze'];
  for (let i = 0; i < 20; i++) {
    const uid = { type: 'Corp::User', id: `u${i}` };
    users.push(uid);
    entities.push({
      uid,
      attrs: {
        tier: { __entity: { type: 'Corp::Tier', id: tiers[i % 3] } },
        hired: { __extn: { fn: 'datetime', arg: `20${10 + (i % 15)}-03-01` } },
      },
      parents: [{ type: 'Corp::Team', id: i % 2 ? 'eng' : 'ops' }],
    });
  }
  for (let i = 0; i < 50; i++) {
    const uid = { type: 'Corp::Doc', id: `d${i}` };
    docs.push(uid);
    entities.push({
      uid,
      attrs: {
        owner: { __entity: users[i % users.length] },
        created: { __extn: { fn: 'datetime', arg: `2025-0${1 + (i % 9)}-15T09:00:00Z` } },
        ttl: { __extn: { fn: 'duration', arg: `${30 + i}d` } },
      },
      parents: [],
      ...({ tags: i % 4 === 0 ? { visibility: 'public' } : i % 4 === 1 ? { restricted: 'yes' } : {} } as object),
    } as Entity);
  }
  const reqs: AuthzRequest[] = [];
  const nows = ['2025-06-01T12:00:00Z', '2025-06-01T19:30:00+0100', '2025-03-02T08:15:00.250Z', '2023-12-31'];
  for (let i = 0; i < 96; i++)
    reqs.push({
      // Edits come from the document's owner (half of the time).
      principal: i % 3 === 0 && i % 2 === 0 ? users[((i * 7) % docs.length) % users.length] : users[i % users.length],
      action: { type: 'Corp::Action', id: i % 3 ? 'read' : 'edit' },
      resource: docs[(i * 7) % docs.length],
      context: { now: nows[i % nows.length], tier: { type: 'Corp::Tier', id: tiers[i % 3] } },
    });
  return { bundle: { policies: { 'features.cedar': policies }, schema, entities }, reqs };
}

interface Measure {
  /** Decisions per CPU-second of this process (the machine may be shared; wall time would count other work). */
  perSecond: number;
  perWallSecond: number;
  p50us: number;
  p99us: number;
}

function measure(authz: Authorizer, reqs: AuthzRequest[], seconds: number): Measure {
  // Warm-up, then throughput (tight loop), then per-decision latency samples.
  const warm = Date.now() + Math.min(1000, seconds * 300);
  let i = 0;
  while (Date.now() < warm) for (let k = 0; k < 64; k++) authz.isAuthorized(reqs[i++ % reqs.length]);
  let count = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const until = t0 + BigInt(Math.round(seconds * 1e9));
  let now = t0;
  while (now < until) {
    for (let k = 0; k < 256; k++) authz.isAuthorized(reqs[i++ % reqs.length]);
    count += 256;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(cpu0);
  const perWallSecond = count / (Number(now - t0) / 1e9);
  const perSecond = count / ((cpu.user + cpu.system) / 1e6);
  const samples = Math.min(200_000, Math.max(2_000, Math.round(perWallSecond * seconds * 0.5)));
  const lat = new Float64Array(samples);
  for (let s = 0; s < samples; s++) {
    const req = reqs[i++ % reqs.length];
    const a = process.hrtime.bigint();
    authz.isAuthorized(req);
    lat[s] = Number(process.hrtime.bigint() - a) / 1000;
  }
  lat.sort();
  return { perSecond, perWallSecond, p50us: lat[Math.floor(samples * 0.5)], p99us: lat[Math.floor(samples * 0.99)] };
}

function fmt(m: Measure): string {
  const r = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(1)} k/s`);
  return `${r(m.perSecond).padStart(10)} per CPU-s (${r(m.perWallSecond)} wall)  p50 ${m.p50us.toFixed(2).padStart(8)} µs  p99 ${m.p99us.toFixed(2).padStart(8)} µs`;
}

export async function run(argv: string[]): Promise<void> {
  const secIdx = argv.indexOf('--seconds');
  const seconds = secIdx >= 0 ? Number(argv[secIdx + 1]) : 3;
  const base = toBundle(await readPolicyDir('policies'));
  const staticHosts = base.entities.filter((e) => e.uid.type === 'Host').map((e) => e.uid.id);
  const staticServers = base.entities.filter((e) => e.uid.type === 'MCPServer').map((e) => e.uid.id);
  const gen = generatedBundle(base);
  const sets: { name: string; bundle: PolicyBundle; reqs: AuthzRequest[] }[] = [
    {
      name: `bundled (${Object.values(base.policies).join('\n').match(/@id\(/g)?.length ?? 0} policies)`,
      bundle: base,
      reqs: dataplaneRequests(staticHosts, staticServers),
    },
    { name: 'generated (1,000 + bundled policies)', bundle: gen.bundle, reqs: dataplaneRequests(gen.hosts, gen.servers) },
    { name: 'Cedar 4.x features (namespace, enum, tags, datetime; 5 policies)', ...featureSet() },
  ];
  const load = (await import('node:os')).loadavg()[0];
  process.stdout.write(
    `node ${process.version}, ${seconds}s per measurement, one thread, load average ${load.toFixed(1)}; request mix: MCP tools/HTTP/connect/DNS × 2 agents × 4 taints\n`,
  );
  // `--set WORD`: only the sets whose name contains WORD (e.g. `--set features`).
  const only = argv.indexOf('--set') >= 0 ? argv[argv.indexOf('--set') + 1] : undefined;
  for (const set of sets) {
    if (only !== undefined && !set.name.includes(only)) continue;
    const fast = new FastAuthorizer(set.bundle);
    const wasm = new WasmAuthorizer(set.bundle);
    // The two engines must agree on the benchmark's own requests.
    for (const r of set.reqs) {
      const a = fast.isAuthorized(r);
      const b = wasm.isAuthorized(r);
      if (a.decision !== b.decision || [...a.reasons].sort().join() !== [...b.reasons].sort().join())
        throw new Error(`engines disagree on ${JSON.stringify(r)}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    }
    const allowed = set.reqs.filter((r) => fast.isAuthorized(r).decision === 'allow').length;
    const mf = measure(fast, set.reqs, seconds);
    const mw = measure(wasm, set.reqs, seconds);
    wasm.dispose();
    process.stdout.write(`${set.name}: ${set.reqs.length} distinct requests (${allowed} allowed)\n`);
    process.stdout.write(`  fast (compiled)   ${fmt(mf)}\n`);
    process.stdout.write(`  cedar-wasm        ${fmt(mw)}\n`);
    process.stdout.write(
      `  ratio             ${(mf.perSecond / mw.perSecond).toFixed(0)}× throughput, ${(mw.p50us / mf.p50us).toFixed(0)}× p50, ${(mw.p99us / mf.p99us).toFixed(0)}× p99\n`,
    );
    const target =
      set !== sets[1]
        ? `  target            ≥ 1.5 M/s: ${mf.perSecond >= 1.5e6 ? 'met' : 'NOT met'}; p99 ≤ 10 µs: ${mf.p99us <= 10 ? 'met' : 'NOT met'}; ≥ 100× cedar-wasm: ${mf.perSecond / mw.perSecond >= 100 ? 'met' : 'NOT met'}\n`
        : '';
    process.stdout.write(target);
  }
}
