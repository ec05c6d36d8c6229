// The enforcer daemon against a real git smart-HTTP server: real `lilith enforcer`
// child processes, real signed capsules, real pushes, observed with `lilith status`.
import assert from 'node:assert/strict';
import { readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readState, type SigningKey } from '../../capsule/index.js';
import { PERSISTED_CAPSULE } from '../../enforcer/control/activation.js';
import { adminGet, adminPost } from '../../enforcer/client/index.js';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import {
  cliStatus,
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  Publisher,
  readAudit,
  sleep,
  tempDir,
  writeTrust,
  pollFlags,
  SYNC_ONLY,
} from '../../testkit/control-plane.js';

const FAST_POLL = [...pollFlags(), ...SYNC_ONLY];

describe('lilith enforcer following a git capsule branch', () => {
  let srv: GitServer;
  let url: string;
  let pub: Publisher;
  let key: SigningKey;
  let dir: string;
  let trust: string;
  let stateDir: string;
  let socket: string;
  let enf: EnforcerProcess | null = null;
  const start = (extra: string[] = [], env: NodeJS.ProcessEnv = {}) =>
    new EnforcerProcess(
      ['--git', url, '--trust', trust, '--state-dir', stateDir, '--admin-listen', '127.0.0.1:0', ...FAST_POLL, ...extra],
      socket,
      env,
    );

  before(async () => {
    srv = await startGitServer();
    await srv.createBareRepo('policies.git');
    url = srv.repoUrl('policies.git');
    pub = await Publisher.create(url);
    key = generateSigningKey();
    dir = await tempDir('cp-enforcer');
    trust = await writeTrust(dir, [key]);
    stateDir = join(dir, 'state');
    socket = join(dir, 'admin.sock');
  });

  after(async () => {
    await enf?.kill('SIGKILL');
    await pub.dispose();
    await srv.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('activates the published capsule, then capsule N+1, and reports it in lilith status', async () => {
    await pub.publish(await makeCapsule(key, 1));
    enf = start();
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 active');
    const commit = await pub.publish(await makeCapsule(key, 2));
    await enf.waitFor((s) => s.active?.watermark === 2, 'watermark 2 active');
    const st = await cliStatus(socket);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.status!.active!.watermark, 2);
    assert.equal(st.status!.active!.capsule_commit, commit);
    assert.deepEqual(st.status!.active!.keyids, [key.keyid]);
    assert.equal(st.status!.state!.watermark, 2);
    assert.equal(st.status!.sync.sources[0].kind, 'git');
    assert.ok(st.status!.sync.sources[0].last_attempt);
    assert.equal(st.status!.kernel.mode, 'off');
    const audit = await readAudit(join(stateDir, 'audit.jsonl'));
    assert.deepEqual(
      audit.filter((e) => e.result === 'activated').map((e) => e.watermark),
      [1, 2],
    );
    const d = await enf.probe();
    assert.equal(d.decision, 'allow');
    assert.deepEqual(d.reasons, ['read-file-clean']);
    assert.equal(d.watermark, 2);
  });

  it('serves `lilith run` on the admin socket: the active config, and attestation from /proc facts', async () => {
    const cfg = await adminGet(socket, '/v1/config');
    assert.equal(cfg.status, 200);
    assert.equal((JSON.parse(cfg.body) as { trust_domain: string }).trust_domain, 'corp.example');
    // This test process is in no agent cgroup and matches no registration: refused, with the facts named.
    const me = await adminPost(socket, '/v1/agents', { pid: process.pid });
    assert.equal(me.status, 403);
    assert.match((JSON.parse(me.body) as { error: string }).error, /no registration matches process/);
    const bad = await adminPost(socket, '/v1/agents', { pid: 'one' });
    assert.equal(bad.status, 400);
    // The loopback admin port: health, readiness and metrics, never the socket-only routes.
    const addr = (await enf!.status())!.admin.listen!;
    const get = async (path: string) => {
      const r = await fetch(`http://${addr}${path}`);
      return { status: r.status, text: await r.text() };
    };
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    const metrics = await get('/metrics');
    assert.match(metrics.text, /^lilith_capsule_active_watermark 2$/m);
    assert.match(metrics.text, /^lilith_sync_git_requests_total \d+$/m);
    assert.equal((await get('/v1/config')).status, 404);
    assert.equal((await fetch(`http://${addr}/authorize`, { method: 'POST', body: '{}' })).status, 405);
  });

  const refusalCases: Array<[string, string, () => Promise<Uint8Array | string>]> = [
    ['a rollback (lower watermark)', 'rollback', () => makeCapsule(key, 1)],
    [
      'a tampered signature',
      'bad_signature',
      async () => {
        const env = JSON.parse(Buffer.from(await makeCapsule(key, 3)).toString()) as { signatures: { sig: string }[] };
        const sig = Buffer.from(env.signatures[0].sig, 'base64');
        sig[5] ^= 0x40;
        env.signatures[0].sig = sig.toString('base64');
        return JSON.stringify(env);
      },
    ],
    [
      'a tampered payload',
      'bad_signature',
      async () => {
        const env = JSON.parse(Buffer.from(await makeCapsule(key, 3)).toString()) as { payload: string };
        env.payload = Buffer.from(Buffer.from(env.payload, 'base64').toString().replace('"watermark":3', '"watermark":9')).toString(
          'base64',
        );
        return JSON.stringify(env);
      },
    ],
    ['a capsule signed by an unknown key', 'unknown_key', () => makeCapsule(generateSigningKey(), 3)],
    [
      'an expired capsule',
      'expired',
      () => makeCapsule(key, 3, { createdAt: new Date(Date.now() - 7200_000), expiresAt: new Date(Date.now() - 3600_000) }),
    ],
    ['a garbage blob', 'malformed', async () => 'this is not a capsule \x00\xff'],
    ['the same watermark with a different payload', 'watermark_reuse', () => makeCapsule(key, 2, { variant: 'deny-all' })],
    [
      'a validly signed capsule whose lilith.json is invalid',
      'bad_config',
      () =>
        makeCapsule(key, 3, { registrations: [{ spiffe_id: 'spiffe://Corp.Example/agents/x', selectors: ['cgroup:/lilith/agents/x'] }] }),
    ],
  ];
  for (const [what, code, make] of refusalCases) {
    it(`refuses ${what} (${code}), keeps the active capsule, reports it in status and audit`, async () => {
      const before = (await enf!.status())!.refusals;
      await pub.publish(await make());
      const st = await enf!.waitFor((s) => s.refusals === before + 1, `refusal ${code}`);
      assert.equal(st.last_refusal!.code, code);
      assert.equal(st.active!.watermark, 2);
      assert.equal(st.ready, true);
      const cli = await cliStatus(socket);
      assert.equal(cli.status!.last_refusal!.code, code);
      assert.match(cli.status!.last_refusal!.reason, /\S/);
      await sleep(100); // the audit line is written right after the status update
      const refused = (await readAudit(join(stateDir, 'audit.jsonl'))).filter((e) => e.result === 'refused');
      assert.ok(String(refused.at(-1)?.reason).startsWith(`${code}:`), JSON.stringify(refused.at(-1)));
    });
  }

  it('follows a force push that rewrites history to a higher watermark', async () => {
    const commit = await pub.forcePush(await makeCapsule(key, 4));
    const st = await enf!.waitFor((s) => s.active?.watermark === 4, 'watermark 4 after force push');
    assert.equal(st.active!.capsule_commit, commit);
  });

  it('keeps enforcing while the git server is down and recovers when it returns', async () => {
    await srv.stop();
    const down = await enf!.waitFor((s) => s.sync.sources[0].last_result === 'error', 'a failed sync');
    assert.equal(down.active!.watermark, 4);
    assert.equal(down.ready, true);
    assert.match(down.sync.sources[0].last_error!, /ECONNREFUSED|socket|timeout|network/i);
    await sleep(1500); // a few backoff rounds
    await srv.start();
    await pub.publish(await makeCapsule(key, 5));
    await enf!.waitFor(
      (s) => s.active?.watermark === 5 && s.sync.sources[0].last_result !== 'error',
      'watermark 5 after the server came back',
    );
  });

  it('after a restart with the git server down, enforces the persisted capsule at once', async () => {
    await enf!.kill('SIGTERM');
    await srv.stop();
    enf = start();
    const st = await enf.waitFor((s) => s.active !== null, 'persisted capsule active');
    assert.equal(st.active!.watermark, 5);
    assert.equal(st.ready, true);
    await enf.waitFor((s) => s.sync.sources[0].last_result === 'error', 'sync failing while the server is down');
    await srv.start();
  });

  it('refuses to start when the state file was deleted, and --reset-state re-seeds it from the persisted capsule', async () => {
    await enf!.kill('SIGTERM');
    await unlink(join(stateDir, 'state.json'));
    const refused = start();
    assert.equal(await refused.exit, 2);
    assert.match(refused.stderr, /state.*missing.*--reset-state/s);
    enf = start(['--reset-state']);
    const st = await enf.waitFor((s) => s.active?.watermark === 5, 're-seeded from the persisted capsule');
    assert.equal(st.state!.watermark, 5);
    assert.equal((await readState(stateDir))!.watermark, 5);
  });

  it('refuses to start when the state file is corrupt, naming the file', async () => {
    await enf!.kill('SIGTERM');
    const path = join(stateDir, 'state.json');
    const good = await readFile(path);
    await writeFile(path, '{"watermark": 5, "dig');
    const refused = start();
    assert.equal(await refused.exit, 2);
    assert.ok(refused.stderr.includes(path), refused.stderr);
    assert.match(refused.stderr, /not valid JSON/);
    await writeFile(path, good);
    enf = start();
    await enf.waitFor((s) => s.active?.watermark === 5, 'back on watermark 5');
  });

  it('kill -9 between persisting the capsule and the state: restart comes back on one consistent capsule', async () => {
    await enf!.kill('SIGTERM');
    enf = start([], { LILITH_TEST_PAUSE_AT: 'after-persist-capsule:30000' });
    await enf.waitFor((s) => s.active?.watermark === 5, 'watermark 5');
    await pub.publish(await makeCapsule(key, 6));
    const deadline = Date.now() + 20_000;
    while (!enf.stderr.includes('test pause at after-persist-capsule') && Date.now() < deadline) await sleep(20);
    assert.ok(enf.stderr.includes('test pause at after-persist-capsule'), enf.stderr);
    await enf.kill('SIGKILL');
    // On disk now: capsule 6, state 5 — the only split the write order allows.
    assert.equal((await readState(stateDir))!.watermark, 5);
    assert.match((await readFile(join(stateDir, PERSISTED_CAPSULE))).toString(), /\S/);
    await srv.stop();
    enf = start();
    const st = await enf.waitFor((s) => s.active !== null, 'active after restart');
    assert.equal(st.active!.watermark, 6);
    assert.equal(st.state!.watermark, 6);
    assert.equal(st.state!.digest, st.active!.digest);
    assert.equal((await readState(stateDir))!.digest, st.active!.digest);
    await srv.start();
  });

  it('kill -9 at random moments while capsules are published: every restart is consistent', async () => {
    let wm = 6;
    let floor = 6; // the highest watermark any run was seen enforcing: never go below it
    for (let round = 0; round < 4; round++) {
      await enf!.kill('SIGKILL');
      enf = start();
      const back = await enf.waitFor((s) => s.active !== null, `round ${round}: active after restart`);
      assert.equal(back.state!.digest, back.active!.digest, `round ${round}: state and active capsule agree`);
      assert.ok(back.active!.watermark >= floor, `round ${round}: came back on ${back.active!.watermark}, below ${floor}`);
      floor = back.active!.watermark;
      wm++;
      await pub.publish(await makeCapsule(key, wm));
      await sleep(50 + Math.random() * 400);
      floor = Math.max(floor, (await enf.status())?.active?.watermark ?? floor);
    }
    await enf!.kill('SIGKILL');
    enf = start();
    const st = await enf.waitFor((s) => s.active?.watermark === wm, `latest watermark ${wm}`);
    assert.equal(st.state!.digest, st.active!.digest);
    assert.equal((await readState(stateDir))!.watermark, wm);
  });
});

describe('lilith enforcer with a watched capsule directory', () => {
  let dir: string;
  let enf: EnforcerProcess | null = null;
  after(async () => {
    await enf?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('activates a capsule dropped by rename, and the higher watermark wins across git and the directory', async () => {
    const srv = await startGitServer();
    try {
      await srv.createBareRepo('p.git');
      const url = srv.repoUrl('p.git');
      const pub = await Publisher.create(url);
      const key = generateSigningKey();
      dir = await tempDir('cp-dir');
      const drops = join(dir, 'drops');
      await (await import('node:fs/promises')).mkdir(drops);
      const trust = await writeTrust(dir, [key]);
      await pub.publish(await makeCapsule(key, 3));
      enf = new EnforcerProcess(
        ['--git', url, '--capsule-dir', drops, '--trust', trust, '--state-dir', join(dir, 'state'), ...FAST_POLL],
        join(dir, 'admin.sock'),
      );
      await enf.waitFor((s) => s.active?.watermark === 3, 'git watermark 3');
      // The safe way to drop a file: write elsewhere in the directory, rename over.
      await writeFile(join(drops, '.incoming'), await makeCapsule(key, 7));
      await rename(join(drops, '.incoming'), join(drops, 'capsule.json'));
      let st = await enf.waitFor((s) => s.active?.watermark === 7, 'dir watermark 7');
      assert.match(st.active!.source, /^dir:/);
      await pub.publish(await makeCapsule(key, 5));
      st = await enf.waitFor(
        (s) => s.sync.sources[0].last_commit !== null && s.refusals >= 1,
        'git watermark 5 refused below the dir capsule',
      );
      assert.equal(st.active!.watermark, 7);
      assert.equal(st.last_refusal!.code, 'rollback');
      assert.equal((await enf.probe()).decision, 'allow');
      await writeFile(join(drops, '.incoming'), await makeCapsule(key, 8, { variant: 'deny-all' }));
      await rename(join(drops, '.incoming'), join(drops, 'capsule.json'));
      await enf.waitFor((s) => s.active?.watermark === 8, 'replaced file, watermark 8');
      const denied = await enf.probe();
      assert.equal(denied.decision, 'deny');
      assert.deepEqual(denied.reasons, ['test-deny-all']);
      await pub.publish(await makeCapsule(key, 9));
      st = await enf.waitFor((s) => s.active?.watermark === 9, 'git watermark 9 overtakes');
      assert.match(st.active!.source, /^git:/);
      await pub.dispose();
    } finally {
      await srv.dispose();
    }
  });
});

describe('lilith enforcer when the active capsule expires', () => {
  let dir: string;
  const procs: EnforcerProcess[] = [];
  after(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const onExpiry of ['fail_closed', 'keep'] as const) {
    it(`on_expiry=${onExpiry}: reported loudly in status and audit; ${onExpiry === 'keep' ? 'still enforcing' : 'not ready, nothing served'}`, async () => {
      dir ??= await tempDir('cp-expiry');
      const key = generateSigningKey();
      const sub = join(dir, onExpiry);
      const drops = join(sub, 'drops');
      await (await import('node:fs/promises')).mkdir(drops, { recursive: true });
      const trust = await writeTrust(sub, [key]);
      const enf = new EnforcerProcess(
        ['--capsule-dir', drops, '--trust', trust, '--state-dir', join(sub, 'state'), '--no-kernel', '--no-dataplane'],
        join(sub, 'admin.sock'),
      );
      procs.push(enf);
      await enf.waitFor(() => true, 'admin socket up');
      // Dropped once the daemon runs, valid for a few seconds: activated, then expires.
      await writeFile(join(drops, 'c.json'), await makeCapsule(key, 1, { expiresAt: new Date(Date.now() + 6000), onExpiry }));
      await enf.waitFor((s) => s.active?.watermark === 1, 'active');
      const st = await enf.waitFor((s) => s.active?.expired === true, 'expired', 15_000);
      const cli = await cliStatus(join(sub, 'admin.sock'));
      if (onExpiry === 'fail_closed') {
        assert.equal(st.ready, false);
        assert.equal(st.active!.enforcing, false);
        assert.equal(cli.code, 1);
      } else {
        assert.equal(st.ready, true);
        assert.equal(st.active!.enforcing, true);
        assert.equal(cli.code, 0);
      }
      assert.match(enf.stderr, /ACTIVE CAPSULE EXPIRED/);
      await sleep(100);
      const audit = await readAudit(join(sub, 'state', 'audit.jsonl'));
      assert.ok(audit.some((e) => e.result === 'expired' && String(e.reason).includes(`on_expiry=${onExpiry}`)));
    });
  }
});

describe('lilith enforcer after a trust file rotation', () => {
  let dir: string;
  let enf: EnforcerProcess | null = null;
  after(async () => {
    await enf?.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('SIGHUP re-reads the trust file: capsules by the new key are accepted, by the retired key refused; a broken file keeps the old trust', async () => {
    dir = await tempDir('cp-rotate');
    const oldKey = generateSigningKey();
    const newKey = generateSigningKey();
    const drops = join(dir, 'drops');
    await (await import('node:fs/promises')).mkdir(drops);
    const trust = await writeTrust(dir, [oldKey]);
    await writeFile(join(drops, 'a.json'), await makeCapsule(oldKey, 1));
    enf = new EnforcerProcess(
      ['--capsule-dir', drops, '--trust', trust, '--state-dir', join(dir, 'state'), '--no-kernel', '--no-dataplane'],
      join(dir, 'admin.sock'),
    );
    await enf.waitFor((s) => s.active?.watermark === 1, 'watermark 1 by the old key');
    // A broken trust file on SIGHUP is reported and ignored.
    await writeFile(trust, '{"version": 1, "keys": [');
    enf.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (!enf.stderr.includes('trust file reload failed') && Date.now() < deadline) await sleep(20);
    assert.match(enf.stderr, /trust file reload failed, keeping the current trust/);
    await writeFile(join(drops, 'b.json'), await makeCapsule(oldKey, 2));
    await enf.waitFor((s) => s.active?.watermark === 2, 'old key still trusted');
    // The rotated file lists only the new key.
    await writeTrust(dir, [newKey]);
    enf.child.kill('SIGHUP');
    while (!enf.stderr.includes('reloaded: 1 key(s)') && Date.now() < deadline + 10_000) await sleep(20);
    await writeFile(join(drops, 'c.json'), await makeCapsule(oldKey, 3));
    const st = await enf.waitFor((s) => s.refusals >= 1, 'retired key refused');
    assert.equal(st.last_refusal!.code, 'unknown_key');
    await writeFile(join(drops, 'd.json'), await makeCapsule(newKey, 4));
    const now = await enf.waitFor((s) => s.active?.watermark === 4, 'new key accepted');
    assert.deepEqual(now.active!.keyids, [newKey.keyid]);
  });
});
