// The bundled policies, decided by both engines for every request shape the
// dataplane produces (docs/ARCHITECTURE.md): every action in the schema × agents
// (groups coding / readers / none / unknown group) × every static resource of the
// action's resource types plus an unknown one × context variants × taint sets.
import '../../cedar/fast/v8-flags.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readPolicyDir, toBundle } from '../../pipeline/policy-source.js';
import { FastAuthorizer } from '../../cedar/fast/fast-authorizer.js';
import { buildSchema } from '../../cedar/fast/schema.js';
import { WasmAuthorizer } from '../../cedar/wasm-authorizer.js';
import { createAuthorizer, engineFallbacks, prepareBundle } from '../../cedar/index.js';
import type { AuthzRequest, CedarValue, Entity } from '../../cedar/types.js';
import { disagreement } from './diff.js';
import { maskToLong } from '../../enforcer/dataplane/taint/mask.js';

const LABELS = ['PII', 'FINANCIAL', 'UNTRUSTED', 'CREDENTIALS', 'SOURCE_CODE'];
const BITS: Record<string, number> = { PII: 0, FINANCIAL: 1, UNTRUSTED: 2, CREDENTIALS: 3, SOURCE_CODE: 4 };

function taint(labels: string[]): { taint: string[]; data_touched: number } {
  let mask = 0;
  for (const l of labels) mask |= 1 << BITS[l];
  return { taint: labels, data_touched: mask };
}

const ALL_TAINTS = Array.from({ length: 32 }, (_, m) => LABELS.filter((_l, i) => m & (1 << i)));
const SOME_TAINTS = [[], ['PII'], ['CREDENTIALS'], ['UNTRUSTED'], ['SOURCE_CODE'], LABELS];

const AGENTS: { id: string; groups: string[] }[] = [
  { id: 'spiffe://corp.example/agents/coder', groups: ['coding'] },
  { id: 'spiffe://corp.example/agents/reader', groups: ['readers'] },
  { id: 'spiffe://corp.example/agents/node-cli', groups: ['coding', 'readers'] },
  { id: 'spiffe://corp.example/agents/nobody', groups: [] },
  { id: 'spiffe://corp.example/agents/stranger', groups: ['unknown-group'] },
];

/** Context variants per context type (without taint/data_touched), as the dataplane builds them. */
function contexts(action: string, contextAttrs: string[]): Record<string, CedarValue>[] {
  if (contextAttrs.includes('tool'))
    return [
      { tool: action, arguments: {} },
      { tool: action, arguments: { path: '/workspace/src/a.ts' } },
      { tool: action, arguments: { path: '/workspace/.git/hooks/pre-commit' } },
      { tool: action, arguments: { path: '/home/u/.ssh/id_rsa' } },
      { tool: action, arguments: { command: 'ls -la' }, mcp_session: 's1' },
      { tool: action, arguments: { command: 'curl http://x' } },
      { tool: 'custom_tool', arguments: { url: 'https://a.example', query: 'q', to: 'x@y', report: 'r' } },
    ];
  if (contextAttrs.includes('host_mismatch'))
    return [
      { method: action, path: '/api/v1/items', port: 443, tls: true, host_mismatch: false },
      { method: action, path: '/index.html', port: 80, tls: false, host_mismatch: false, content_type: 'text/html', user_agent: 'curl/8' },
      { method: action, path: '/api/x', port: 8080, tls: false, host_mismatch: true, content_length: 12 },
    ];
  if (contextAttrs.includes('protocol'))
    return [
      { protocol: 'tls', ip: '140.82.112.3', port: 443, sni: 'api.github.com', alpn: ['h2', 'http/1.1'] },
      { protocol: 'tls', ip: '140.82.112.3', port: 443, sni: 'api.github.com', sni_dns: 'match' },
      { protocol: 'tls', ip: '10.0.1.50', port: 8443, sni: 'db.corp.example', sni_dns: 'mismatch' },
      { protocol: 'tls', ip: '10.0.1.50', port: 8443, sni: 'db.corp.example', sni_dns: 'unknown' },
      { protocol: 'tcp', ip: '10.0.1.50', port: 8080 },
      { protocol: 'tcp', ip: '10.0.1.50', port: 22 },
      { protocol: 'tls', ip: '1.2.3.4', port: 8443 },
    ];
  if (contextAttrs.includes('qtype')) return [{ qtype: 'A' }, { qtype: 'AAAA' }, { qtype: 'TXT' }, { qtype: 'HTTPS' }];
  // McpContext
  return [{ method: action }, { method: 'tools/list', mcp_session: 'abc' }, { method: action, uri: 'file:///etc/passwd', prompt: 'p' }];
}

test('bundled policies: both engines decide every dataplane request shape identically', async () => {
  const bundle = toBundle(await readPolicyDir('policies'));
  const fast = new FastAuthorizer(bundle);
  // Built from a bundle parsed elsewhere (as the verification worker does) and structured-cloned over.
  const fastPrepared = new FastAuthorizer({ ...bundle, prepared: structuredClone(prepareBundle(bundle)) });
  const wasm = new WasmAuthorizer(bundle);
  const schema = buildSchema(bundle.schema);
  let count = 0;
  let allows = 0;
  const failures: string[] = [];
  const check = (req: AuthzRequest) => {
    const f = fast.isAuthorized(req);
    const w = wasm.isAuthorized(req);
    count++;
    if (w.decision === 'allow') allows++;
    const d = disagreement(f, w);
    if (d && failures.length < 5) failures.push(`${d}\n  fast ${JSON.stringify(f)}\n  wasm ${JSON.stringify(w)}\n  ${JSON.stringify(req)}`);
    const p = fastPrepared.isAuthorized(req);
    if (JSON.stringify(p) !== JSON.stringify(f) && failures.length < 5)
      failures.push(
        `prepared bundle decides differently\n  prepared ${JSON.stringify(p)}\n  fast ${JSON.stringify(f)}\n  ${JSON.stringify(req)}`,
      );
  };
  for (const [action, info] of schema.actions.get('Action') ?? []) {
    const resources = bundle.entities.filter((e) => info.resourceTypes.has(e.uid.type)).map((e) => e.uid);
    for (const t of info.resourceTypes) resources.push({ type: t, id: 'unknown.example' });
    // Action groups apply to nothing: any request naming one is malformed.
    if (resources.length === 0) resources.push({ type: 'MCPServer', id: 'files' });
    const ctxs = contexts(action, [...info.context.attrs.keys()]);
    for (const agent of AGENTS) {
      const entities: Entity[] = [
        { uid: { type: 'Agent', id: agent.id }, attrs: {}, parents: agent.groups.map((g) => ({ type: 'AgentGroup', id: g })) },
      ];
      resources.forEach((resource, ri) => {
        ctxs.forEach((ctx, ci) => {
          const taints = agent === AGENTS[0] && ri === 0 && ci === 0 ? ALL_TAINTS : SOME_TAINTS;
          for (const labels of taints) {
            check({
              principal: { type: 'Agent', id: agent.id },
              action: { type: 'Action', id: action },
              resource,
              context: { ...ctx, ...taint(labels) },
              entities,
            });
          }
        });
      });
    }
    // Malformed shapes the dataplane must never produce, but which must still agree (deny).
    const base = {
      principal: { type: 'Agent', id: AGENTS[0].id },
      action: { type: 'Action', id: action },
      resource: resources[0],
      entities: [],
    };
    check({ ...base, context: { ...ctxs[0] } });
    check({ ...base, context: { ...ctxs[0], ...taint([]), extra: 'x' } });
    check({ ...base, context: { ...ctxs[0], taint: [], data_touched: '0' } });
    check({ ...base, resource: { type: 'Zone', id: 'internal' }, context: { ...ctxs[0], ...taint([]) } });
  }
  // Actions the schema does not declare (an MCP tool the dataplane probes for).
  check({
    principal: { type: 'Agent', id: AGENTS[0].id },
    action: { type: 'Action', id: 'no_such_tool' },
    resource: { type: 'MCPServer', id: 'files' },
    context: { taint: [], data_touched: 0, tool: 'x', arguments: {} },
  });
  // data_touched with bit 63 set, as the dataplane's maskToLong makes it (an exact BigInt).
  check({
    principal: { type: 'Agent', id: AGENTS[0].id },
    action: { type: 'Action', id: 'http_post' },
    resource: { type: 'MCPServer', id: 'files' },
    context: { tool: 'http_post', arguments: {}, taint: [], data_touched: maskToLong((1n << 63n) | 1n) },
  });
  check({
    principal: { type: 'Agent', id: AGENTS[0].id },
    action: { type: 'Action', id: 'http_post' },
    resource: { type: 'MCPServer', id: 'files' },
    context: { tool: 'http_post', arguments: {}, taint: [], data_touched: maskToLong((1n << 63n) | (1n << 40n)) },
  });
  wasm.dispose();
  process.stdout.write(`# bundled policies: ${count} requests, ${allows} allowed by cedar-wasm\n`);
  assert.deepEqual(failures, []);
  assert.ok(count > 3000 && allows > 100);
});

test('createAuthorizer: fast engine by default; a compiler failure falls back to cedar-wasm visibly', async () => {
  const bundle = toBundle(await readPolicyDir('policies'));
  const fast = createAuthorizer(bundle);
  assert.equal(fast.engine, 'fast');
  assert.equal(fast.fallbackReason, undefined);
  assert.equal(createAuthorizer(bundle, 'wasm').engine, 'wasm');
  // Datetime, which the compiled engine once refused, now compiles.
  const withDatetime = {
    ...bundle,
    policies: {
      ...bundle.policies,
      'dt.cedar':
        '@id("dt-check") permit (principal, action, resource) when { datetime("2024-10-15").toDate() == datetime("2024-10-15") };',
    },
  };
  assert.equal(createAuthorizer(withDatetime).engine, 'fast');
  // The guard: a compiler bug is answered by cedar-wasm, counted, logged and marked.
  const lines: string[] = [];
  const before = (await engineFallbacks.get()).values.reduce((n, v) => n + v.value, 0);
  const authz = createAuthorizer(bundle, 'fast', {
    log: (l) => lines.push(l),
    compile: () => {
      throw new TypeError('simulated compiler bug');
    },
  });
  assert.equal(authz.engine, 'wasm');
  assert.match(authz.fallbackReason ?? '', /internal compiler error: simulated compiler bug/);
  assert.match(lines.join('\n'), /cannot take this policy set \(internal compiler error: simulated compiler bug\); using cedar-wasm/);
  const after = (await engineFallbacks.get()).values.reduce((n, v) => n + v.value, 0);
  assert.equal(after, before + 1);
  authz.dispose();
});

test('the dataplane probe for declared tool actions classifies the same under both engines', async () => {
  // enforcer/proxy/decide.ts asks with a ToolContext and reads "does not exist in the
  // supplied schema|not declared" in the errors to tell an undeclared tool.
  const bundle = toBundle(await readPolicyDir('policies'));
  const fast = new FastAuthorizer(bundle);
  const wasm = new WasmAuthorizer(bundle);
  const undeclared = (errors: string[]) => errors.some((e) => /does not exist in the supplied schema|not declared/.test(e));
  const tools = [...(buildSchema(bundle.schema).actions.get('Action')?.keys() ?? []), 'no_such_tool', 'Read_File', ''];
  let undeclaredCount = 0;
  for (const tool of tools) {
    const req = {
      principal: { type: 'Agent', id: 'spiffe://corp.example/agents/coder' },
      action: { type: 'Action', id: tool },
      resource: { type: 'MCPServer', id: '-' },
      context: { taint: [], data_touched: 0, tool, arguments: {} },
    };
    const f = undeclared(fast.isAuthorized(req).errors);
    assert.equal(f, undeclared(wasm.isAuthorized(req).errors), `tool ${JSON.stringify(tool)}`);
    if (f) undeclaredCount++;
  }
  wasm.dispose();
  assert.equal(undeclaredCount, 3);
});
