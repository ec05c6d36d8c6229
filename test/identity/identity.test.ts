import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  validateSpiffeId,
  parseSelector,
  compileRegistrations,
  resolveIdentity,
  findAmbiguities,
  readProcessFacts,
  SelectorError,
} from '../../identity/index.js';

test('SPIFFE IDs: valid forms accepted', () => {
  for (const id of ['spiffe://corp.example', 'spiffe://corp.example/agents/coder', 'spiffe://a-b_c.d/x/Y.z-1_2']) {
    assert.equal(validateSpiffeId(id), null, id);
  }
});

test('SPIFFE IDs: each rule of the standard refused with its reason', () => {
  const cases: [string, RegExp][] = [
    ['https://corp.example/x', /scheme/],
    ['SPIFFE://corp.example/x', /scheme/],
    ['spiffe://', /trust domain is empty/],
    ['spiffe://Corp.example/x', /lowercase/],
    ['spiffe://corp.example:443/x', /may contain only/],
    ['spiffe://user@corp.example/x', /may contain only/],
    ['spiffe://corp.example/', /must not end/],
    ['spiffe://corp.example/a//b', /empty segment/],
    ['spiffe://corp.example/a/', /empty segment/],
    ['spiffe://corp.example/a/../b', /not allowed/],
    ['spiffe://corp.example/./b', /not allowed/],
    ['spiffe://corp.example/a b', /may contain only/],
    ['spiffe://corp.example/a?q=1', /may contain only/],
    [`spiffe://corp.example/${'a'.repeat(2040)}`, /longer than 2048/],
  ];
  for (const [id, why] of cases) assert.match(validateSpiffeId(id) ?? 'VALID', why, id);
});

test('selectors: malformed ones are refused with the reason', () => {
  for (const [s, why] of [
    ['unix:uid:abc', /must be a number/],
    ['unix:sha256:XYZ', /64 lowercase hex/],
    ['unix:path:relative/bin', /absolute/],
    ['cgroup:lilith', /must start with/],
    ['k8s:namespace:default', /expected/],
    ['k8s:ns:Default', /DNS label/],
  ] as const) {
    assert.throws(
      () => parseSelector(s),
      (e: unknown) => e instanceof SelectorError && why.test((e as Error).message),
      s,
    );
  }
});

const regs = compileRegistrations([
  { spiffe_id: 'spiffe://t/agents', selectors: ['cgroup:/lilith/agents'] },
  { spiffe_id: 'spiffe://t/agents/coder', selectors: ['cgroup:/lilith/agents/coder'] },
  { spiffe_id: 'spiffe://t/agents/coder-node', selectors: ['cgroup:/lilith/agents/coder', 'unix:path:/usr/bin/node'] },
  { spiffe_id: 'spiffe://t/uid1000', selectors: ['unix:uid:1000'] },
]);

test('resolution: the most specific registration wins; no match is unknown', () => {
  assert.equal(resolveIdentity({ pid: 1, cgroupPath: '/lilith/agents/x' }, regs)?.spiffeId, 'spiffe://t/agents');
  assert.equal(resolveIdentity({ pid: 1, cgroupPath: '/lilith/agents/coder/sub' }, regs)?.spiffeId, 'spiffe://t/agents/coder');
  assert.equal(
    resolveIdentity({ pid: 1, cgroupPath: '/lilith/agents/coder', exePath: '/usr/bin/node' }, regs)?.spiffeId,
    'spiffe://t/agents/coder-node',
  );
  assert.equal(resolveIdentity({ pid: 1, cgroupPath: '/lilith/agentsX' }, regs), null);
  assert.equal(resolveIdentity({ pid: 1, cgroupPath: '/other' }, regs), null);
});

test('resolution: ambiguous matches resolve to no identity, and validation reports them', () => {
  // uid:1000 and cgroup:/lilith/agents can both match one process; neither implies the other.
  assert.equal(resolveIdentity({ pid: 1, uid: 1000, cgroupPath: '/lilith/agents/x' }, regs), null);
  const problems = findAmbiguities(regs);
  assert.ok(
    problems.some((p) => p.includes('spiffe://t/agents ') && p.includes('spiffe://t/uid1000')),
    problems.join('\n'),
  );
  // Disjoint registrations (different uids, sibling cgroups) are never ambiguous.
  assert.deepEqual(
    findAmbiguities(
      compileRegistrations([
        { spiffe_id: 'spiffe://t/a', selectors: ['unix:uid:1'] },
        { spiffe_id: 'spiffe://t/b', selectors: ['unix:uid:2'] },
      ]),
    ),
    [],
  );
  assert.deepEqual(
    findAmbiguities(
      compileRegistrations([
        { spiffe_id: 'spiffe://t/c', selectors: ['cgroup:/x/a'] },
        { spiffe_id: 'spiffe://t/d', selectors: ['cgroup:/x/b'] },
        { spiffe_id: 'spiffe://t/e', selectors: ['cgroup:/x/a', 'unix:path:/usr/bin/node'] },
      ]),
    ),
    [],
  );
});

test('process facts: a real child process is attested from /proc', async () => {
  const child = spawn('/bin/sleep', ['5']);
  await once(child, 'spawn');
  try {
    const facts = await readProcessFacts(child.pid!);
    assert.equal(facts.uid, process.getuid!());
    assert.equal(facts.gid, process.getgid!());
    assert.equal(facts.exePath, '/usr/bin/sleep');
    assert.equal(facts.exeSha256, createHash('sha256').update(readFileSync('/usr/bin/sleep')).digest('hex'));
    assert.ok(facts.cgroupPath?.startsWith('/'), `cgroup path ${facts.cgroupPath}`);
    const ids = compileRegistrations([
      { spiffe_id: 'spiffe://t/sleep', selectors: [`unix:sha256:${facts.exeSha256}`, `unix:uid:${facts.uid}`] },
    ]);
    assert.equal(resolveIdentity(facts, ids)?.spiffeId, 'spiffe://t/sleep');
  } finally {
    child.kill();
  }
  await assert.rejects(readProcessFacts(2 ** 22 + 7));
});

test('bundled registrations are unambiguous and valid', async () => {
  const { readFile } = await import('node:fs/promises');
  const config = JSON.parse(await readFile('policies/lilith.json', 'utf8'));
  for (const r of config.registrations) assert.equal(validateSpiffeId(r.spiffe_id), null, r.spiffe_id);
  assert.deepEqual(findAmbiguities(compileRegistrations(config.registrations)), []);
});
