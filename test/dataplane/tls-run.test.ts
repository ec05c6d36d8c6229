// `lilith run` and the node CA, under real Landlock: the agent trusts the CA
// through the bundle variables without any change to its code, and cannot read
// the CA key even when the key's directory lies inside a root its registration
// allows read-write (and even as root: the key is 0600 root, Landlock keeps it
// out all the same). Creates a cgroup: run under /tmp/lilith-kernel.lock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchAgent, CA_BUNDLE_VARS } from '../../confine/launch.js';
import { cgroup2Root } from '../../confine/cgroup.js';
import { attestAgent } from '../../enforcer/daemon/index.js';
import { InterceptionCa } from '../../enforcer/dataplane/tls/ca.js';
import type { LilithConfig } from '../../capsule/config.js';

const skip = process.getuid?.() !== 0 ? 'needs root (cgroups)' : false;
const cgroupBase = `lilith-tlsrun-${process.pid}/agents`;
let work: string;
let ca: InterceptionCa;
let config: LilithConfig;

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'lilith-tlsrun-'));
  mkdirSync(join(work, 'workspace'));
  // Results go to a directory of their own: a root holding a secret is replaced by its
  // children minus the secret's branch (Landlock cannot carve), so new files directly in it are refused.
  mkdirSync(join(work, 'out'));
  // The worst case: the state dir (and so the CA key) inside the agent's read-write workspace.
  ca = await InterceptionCa.open(join(work, 'workspace', 'state', 'ca'));
  config = JSON.parse(readFileSync('policies/lilith.json', 'utf8')) as LilithConfig;
  config.kernel.cgroup_root = cgroupBase;
  config.registrations = [
    {
      spiffe_id: 'spiffe://corp.example/agents/tester',
      selectors: [`cgroup:/${cgroupBase}/tester`],
      profile: 'standard',
      filesystem: { read_only: ['/usr', '/lib', '/etc'], read_write: [join(work, 'workspace'), join(work, 'out')] },
    },
  ];
});

after(() => {
  if (skip) return;
  rmSync(work, { recursive: true, force: true });
  const root = join(cgroup2Root(), `lilith-tlsrun-${process.pid}`);
  for (const dir of [join(root, 'agents', 'tester'), join(root, 'agents'), root]) {
    try {
      rmdirSync(dir);
    } catch {
      // gone
    }
  }
});

test('a confined agent trusts the node CA through its bundle variables and cannot read the CA key', { skip }, async () => {
  assert.equal(statSync(ca.keyPath).mode & 0o777, 0o600, 'the key is 0600');
  const out = join(work, 'out', 'out.txt');
  const script = [
    `cat ${ca.keyPath} > /dev/null 2>&1; echo "key=$?" > ${out}`,
    `ls ${join(work, 'workspace', 'state', 'ca')} > /dev/null 2>&1; echo "dir=$?" >> ${out}`,
    ...CA_BUNDLE_VARS.map((v) => `echo "${v}=$${v}" >> ${out}`),
    `grep -c "BEGIN CERTIFICATE" "$SSL_CERT_FILE" >> ${out}`,
    `grep -q "$(sed -n 2p ${join(work, 'workspace', 'state', 'ca', 'ca-cert.pem')} 2>/dev/null || echo none)" "$SSL_CERT_FILE"; echo "certdir=$?" >> ${out}`,
  ].join('\n');
  const code = await launchAgent({
    agent: 'tester',
    command: ['/bin/sh', '-c', script],
    config,
    attest: async (req) => {
      const r = await attestAgent(req, config.registrations);
      if (!r.ok) throw new Error(r.error);
      return { spiffeId: r.spiffe_id, registration: r.registration };
    },
    ca: { pem: ca.certPem, keyDir: join(work, 'workspace', 'state', 'ca') },
  });
  assert.equal(code, 0);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  assert.notEqual(lines[0], 'key=0', 'the CA key is not readable');
  assert.notEqual(lines[1], 'dir=0', 'the CA directory is not listable');
  const vars = Object.fromEntries(lines.slice(2, 2 + CA_BUNDLE_VARS.length).map((l) => l.split('=') as [string, string]));
  const bundle = vars.SSL_CERT_FILE;
  assert.match(bundle, /lilith-ca-bundle-.*\/ca-bundle\.pem$/);
  for (const v of CA_BUNDLE_VARS) assert.equal(vars[v], bundle, `${v} names the bundle`);
  assert.ok(Number(lines[2 + CA_BUNDLE_VARS.length]) >= 1, 'the bundle holds certificates');
  // The bundle holds the node CA (read by the test, not the agent: the agent cannot read ca-cert.pem's directory either).
  const caLine = ca.certPem.split('\n')[1];
  assert.ok(caLine.length > 10);
  assert.throws(() => statSync(bundle), 'the bundle is removed when the agent exits');
});
