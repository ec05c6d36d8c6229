// Deploy files: syntax (systemd-analyze verify, YAML parse) and the structure the
// docs promise — capabilities, restart policy, probes, volumes — plus the settings
// file and every enforcer flag they use checked against the real daemon config code.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { usage } from '../../cli/commands/enforcer.js';
import { readSettingsFile, resolveDaemonConfig, type RawSettings } from '../../enforcer/daemon/config.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const DEPLOY = join(ROOT, 'deploy');
const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

function unitSections(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) {
      section = m[1];
      out.set(section, new Map());
      continue;
    }
    const i = line.indexOf('=');
    assert.ok(i > 0 && section, `bad unit line: ${line}`);
    const k = line.slice(0, i);
    const sec = out.get(section)!;
    sec.set(k, [...(sec.get(k) ?? []), line.slice(i + 1)]);
  }
  return out;
}

/** Every --flag used must be one `lilith enforcer` accepts. */
function assertFlagsKnown(args: string[], where: string) {
  for (const a of args) if (a.startsWith('--')) assert.ok(usage.includes(a.split('=')[0]), `${where}: unknown enforcer flag ${a}`);
}

it('systemd unit passes systemd-analyze verify without warnings', {
  skip: hasSystemdAnalyze ? false : 'systemd-analyze not installed',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-unit-'));
  try {
    copyFileSync(join(DEPLOY, 'systemd/lilith-enforcer.service'), join(dir, 'lilith-enforcer.service'));
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'lilith-enforcer.service')], { encoding: 'utf8' });
    const ours = r.stderr.split('\n').filter((l) => l.includes('lilith-enforcer.service'));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(ours, [], r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('systemd unit: runs `lilith enforcer`, restarts on failure, has the BPF capabilities', () => {
  const u = unitSections(readFileSync(join(DEPLOY, 'systemd/lilith-enforcer.service'), 'utf8'));
  const svc = u.get('Service')!;
  const exec = svc.get('ExecStart')![0].split(/\s+/);
  assert.equal(exec[2], 'enforcer');
  assertFlagsKnown(exec.slice(3), 'ExecStart');
  assert.deepEqual(svc.get('Restart'), ['on-failure']);
  // Ready and watchdog over sd_notify: a stopped or hung daemon (which never exits) is killed and restarted.
  assert.deepEqual(svc.get('Type'), ['notify']);
  assert.deepEqual(svc.get('NotifyAccess'), ['main']);
  assert.deepEqual(svc.get('WatchdogSec'), ['1s']);
  assert.deepEqual(svc.get('WatchdogSignal'), ['SIGKILL']);
  assert.deepEqual(svc.get('RestartSec'), ['100ms']); // well inside the 1 s heartbeat TTL (test/kernel/restart-gap.test.ts)
  const bounding = svc.get('CapabilityBoundingSet')![0].split(/\s+/);
  const ambient = svc.get('AmbientCapabilities')![0].split(/\s+/);
  for (const cap of ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN']) {
    assert.ok(bounding.includes(cap), `bounding set lacks ${cap}`);
    assert.ok(ambient.includes(cap), `ambient set lacks ${cap}`);
  }
  assert.ok(
    ambient.every((c) => bounding.includes(c)),
    'ambient capabilities must be in the bounding set',
  );
  assert.deepEqual(svc.get('RuntimeDirectory'), ['lilith']); // /run/lilith/admin.sock
  assert.ok(u.get('Install')!.get('WantedBy'));
});

it('the example settings file is accepted by the daemon config loader', () => {
  const raw = readSettingsFile(join(DEPLOY, 'enforcer.json'));
  const cfg = resolveDaemonConfig(raw, {});
  assert.equal(cfg.git?.branch, 'capsules');
  assert.equal(cfg.adminSocket, '/run/lilith/admin.sock');
  assert.ok(cfg.pollMaxMs >= cfg.pollMinMs);
});

it('Kubernetes DaemonSet: parses, runs the enforcer with BPF capabilities, probes healthz/readyz, mounts bpffs and cgroup2', () => {
  const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes/daemonset.yaml'), 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, []);
  const objs = docs.map((d) => d.toJS() as Record<string, any>);
  const ds = objs.find((o) => o.kind === 'DaemonSet')!;
  assert.ok(ds, 'no DaemonSet');
  assert.equal(ds.apiVersion, 'apps/v1');
  const cm = objs.find((o) => o.kind === 'ConfigMap')!;
  const settings = JSON.parse(cm.data['enforcer.json']) as RawSettings;
  assert.equal(resolveDaemonConfig(settings, {}).adminListen, '127.0.0.1:7891');
  JSON.parse(cm.data['trust.json']);
  const pod = ds.spec.template.spec;
  assert.deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  const c = pod.containers[0];
  assert.equal(c.args[0], 'enforcer');
  assertFlagsKnown(c.args, 'DaemonSet args');
  for (const cap of ['BPF', 'PERFMON', 'NET_ADMIN']) assert.ok(c.securityContext.capabilities.add.includes(cap), `lacks ${cap}`);
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  // A stopped daemon is found within period + timeout (Kubernetes' floor: 1 s each) and restarted.
  assert.equal(c.livenessProbe.periodSeconds, 1);
  assert.equal(c.livenessProbe.timeoutSeconds, 1);
  assert.equal(c.livenessProbe.failureThreshold, 1);
  assert.equal(c.startupProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.readinessProbe.httpGet.port, 7891);
  const mounts = new Map(c.volumeMounts.map((m: any) => [m.name, m.mountPath]));
  const vols = new Map(pod.volumes.map((v: any) => [v.name, v]));
  for (const [name] of mounts) assert.ok(vols.has(name), `volumeMount ${name} has no volume`);
  assert.equal(mounts.get('bpffs'), '/sys/fs/bpf');
  assert.equal(mounts.get('cgroup'), '/sys/fs/cgroup');
  assert.equal((vols.get('state') as any).hostPath.path, '/var/lib/lilith');
  assert.equal(pod.hostNetwork, true);
});

it('compose file: parses, restarts on failure, BPF capabilities, state volume', () => {
  const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'compose/compose.yaml'), 'utf8'));
  assert.equal(docs.length, 1);
  assert.deepEqual(docs[0].errors, []);
  const svc = (docs[0].toJS() as any).services.enforcer;
  assert.equal(svc.command[0], 'enforcer');
  assertFlagsKnown(svc.command, 'compose command');
  assert.equal(svc.restart, 'on-failure');
  for (const cap of ['BPF', 'PERFMON', 'NET_ADMIN']) assert.ok(svc.cap_add.includes(cap), `lacks ${cap}`);
  assert.ok(svc.volumes.some((v: string) => v.endsWith(':/var/lib/lilith')));
  assert.equal(svc.build.dockerfile, 'deploy/Dockerfile');
  // The Dockerfile it builds exists and runs the CLI.
  assert.match(readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8'), /ENTRYPOINT \["node", "\/opt\/lilith\/dist\/cli\/main.js"\]/);
});

it('daemon settings: flags beat env beat file, and bad values are named', () => {
  const cfg = resolveDaemonConfig(
    { poll_min_ms: '100' },
    { LILITH_POLL_MIN_MS: '200', LILITH_POLL_MAX_MS: '300' },
    { trust: '/t', state_dir: '/s', git_url: 'http://x/r.git', poll_max_ms: 9000 },
  );
  assert.equal(cfg.pollMinMs, 100);
  assert.equal(cfg.pollMaxMs, 300);
  assert.equal(cfg.trust, '/t');
  assert.throws(() => resolveDaemonConfig({ trust: '/t', state_dir: '/s' }, {}), /no capsule source/);
  assert.throws(() => resolveDaemonConfig({ trust: '/t', state_dir: '/s', git_url: 'ssh://x' }, {}), /git_url must be an http/);
  assert.throws(
    () => resolveDaemonConfig({ trust: '/t', state_dir: '/s', git_url: 'http://x', poll_min_ms: 'soon' }, {}),
    /poll_min_ms \(flag\): expected a non-negative integer/,
  );
  assert.throws(
    () => resolveDaemonConfig({ trust: '/t', state_dir: '/s', git_url: 'http://x' }, { LILITH_ENGINE: 'turbo' }),
    /engine \(env LILITH_ENGINE\)/,
  );
  assert.throws(() => resolveDaemonConfig({ state_dir: '/s', git_url: 'http://x' }, {}), /no trust file/);
});

it('lilith enforcer exits 2 with a clear message on bad settings', () => {
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'dist/cli/main.js'), 'enforcer', '--state-dir', '/nonexistent', '--git', 'http://127.0.0.1:1/x.git'],
    { encoding: 'utf8', env: { ...process.env, LILITH_TRUST: '' } },
  );
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no trust file/);
  const r2 = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist/cli/main.js'),
      'enforcer',
      '--trust',
      '/nonexistent/trust.json',
      '--state-dir',
      '/tmp/x',
      '--git',
      'http://127.0.0.1:1/x.git',
      '--no-kernel',
      '--no-dataplane',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /cannot read trust file \/nonexistent\/trust.json/);
  void execFileSync;
});
