// The container metadata directory is a daemon setting (node-local, not policy):
// its path is checked when the settings are read, its ownership and modes when
// the enforcer starts with the dataplane — whoever can write it names identities,
// so a directory others can write stops the enforcer (exit 2) instead of being
// attested from. The resolver reads the configured directory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { checkWorkloadDir, checkWorkloadDirPath, containerFacts, DEFAULT_WORKLOAD_DIR, WorkloadDirError } from '../../identity/index.js';
import { DaemonConfigError, resolveDaemonConfig } from '../../enforcer/daemon/config.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const base = mkdtempSync(join(tmpdir(), 'lilith-wl-'));
chmodSync(base, 0o755);
after(() => rmSync(base, { recursive: true, force: true }));

const codeOf = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof WorkloadDirError || err instanceof DaemonConfigError, String(err));
    return err.code;
  }
};

const MIN = { trust: '/t.json', state_dir: '/s', capsule_dir: '/c' };

test('the path must be absolute and normalized', () => {
  for (const bad of ['', 'run/lilith/workloads', '/run/../etc', '/run//lilith', '/run/lilith/', '/a\0b', `/${'x'.repeat(1100)}`])
    assert.equal(
      codeOf(() => checkWorkloadDirPath(bad)),
      'WORKLOAD_DIR_PATH',
      JSON.stringify(bad),
    );
  checkWorkloadDirPath('/run/lilith/workloads');
});

test('a missing directory is accepted (no metadata: selectors needing it do not match)', () => {
  checkWorkloadDir(join(base, 'absent'));
});

test('root-owned 0755 directories are accepted; a file, a group/world-writable directory or subdirectory, or another owner are refused by name', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root (chown)');
  const ok = join(base, 'ok');
  mkdirSync(join(ok, 'pods'), { recursive: true, mode: 0o755 });
  mkdirSync(join(ok, 'containers'), { mode: 0o755 });
  checkWorkloadDir(ok);

  const file = join(base, 'file');
  writeFileSync(file, '');
  assert.equal(
    codeOf(() => checkWorkloadDir(file)),
    'WORKLOAD_DIR_NOT_DIRECTORY',
  );

  const world = join(base, 'world');
  mkdirSync(world);
  chmodSync(world, 0o777);
  assert.throws(() => checkWorkloadDir(world), /writable by others .*mode 777/);

  const sub = join(base, 'sub');
  mkdirSync(join(sub, 'containers'), { recursive: true });
  chmodSync(join(sub, 'containers'), 0o775);
  assert.throws(
    () => checkWorkloadDir(sub),
    (e: unknown) => e instanceof WorkloadDirError && e.code === 'WORKLOAD_DIR_UNSAFE' && e.message.includes(join(sub, 'containers')),
  );

  const other = join(base, 'other');
  mkdirSync(other, { mode: 0o755 });
  chownSync(other, 65534, 65534);
  assert.equal(
    codeOf(() => checkWorkloadDir(other)),
    'WORKLOAD_DIR_UNSAFE',
  );
  // ...unless that owner is the enforcer's own user.
  checkWorkloadDir(other, 65534);
});

test('daemon settings: default, file < env < flag, and a bad path is a bad_setting naming workload_metadata_dir', () => {
  assert.equal(resolveDaemonConfig(MIN, {}).workloadMetadataDir, DEFAULT_WORKLOAD_DIR);
  assert.equal(resolveDaemonConfig(MIN, {}, { workload_metadata_dir: '/file' }).workloadMetadataDir, '/file');
  assert.equal(
    resolveDaemonConfig(MIN, { LILITH_WORKLOAD_METADATA_DIR: '/env' }, { workload_metadata_dir: '/file' }).workloadMetadataDir,
    '/env',
  );
  assert.equal(
    resolveDaemonConfig({ ...MIN, workload_metadata_dir: '/flag' }, { LILITH_WORKLOAD_METADATA_DIR: '/env' }).workloadMetadataDir,
    '/flag',
  );
  assert.throws(
    () => resolveDaemonConfig({ ...MIN, workload_metadata_dir: 'relative/dir' }, {}),
    (e: unknown) => e instanceof DaemonConfigError && e.code === 'bad_setting' && /workload_metadata_dir: .*absolute/.test(e.message),
  );
});

test('lilith enforcer refuses to start (exit 2) on a metadata directory others can write; --no-dataplane does not read it', (t) => {
  const world = join(base, 'world-cli');
  mkdirSync(world);
  chmodSync(world, 0o777);
  const args = [join(ROOT, 'dist/cli/main.js'), 'enforcer', '--trust', '/nonexistent/trust.json', '--state-dir', join(base, 'st')];
  const r = spawnSync(process.execPath, [...args, '--capsule-dir', base, '--no-kernel', '--workload-metadata-dir', world], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /workload_metadata_dir: workload metadata directory .* is writable by others/);
  const bad = spawnSync(process.execPath, [...args, '--capsule-dir', base, '--no-kernel', '--workload-metadata-dir', 'rel'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /workload_metadata_dir/);
  // Sync only: no attestation, the directory is not consulted (the next error is the trust file's).
  const sync = spawnSync(
    process.execPath,
    [...args, '--capsule-dir', base, '--no-kernel', '--no-dataplane', '--workload-metadata-dir', world],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(sync.status, 2);
  assert.match(sync.stderr, /cannot read trust file/);
  void t;
});

test('container facts come from the directory given (what the daemon passes to the origin resolver)', async () => {
  const dir = join(base, 'facts');
  const id = 'ab'.repeat(32);
  mkdirSync(join(dir, 'containers'), { recursive: true });
  writeFileSync(join(dir, 'containers', `${id}.json`), JSON.stringify({ name: 'agent', labels: { app: 'reader' } }));
  const cg = `/machine.slice/libpod-${id}.scope`;
  const facts = await containerFacts(cg, dir);
  assert.equal(facts?.id, id);
  assert.deepEqual(facts?.labels, { app: 'reader' });
  const elsewhere = await containerFacts(cg, join(base, 'absent'));
  assert.equal(elsewhere?.id, id, 'the id is still attested from the cgroup path');
  assert.equal(elsewhere?.labels, undefined, 'no metadata: no labels');
});
