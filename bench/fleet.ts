// `npm run bench -- fleet [--n 20] [--idle-s 30] [--poll-min-ms 2000] [--poll-max-ms 5000]`
// N real `lilith enforcer` processes (sync only) follow one real git smart-HTTP server.
// Reports how long until all N enforce a newly published capsule (p50 / max), and the
// git server's request load per enforcer per minute while nothing changes. Baselines
// from the same run's settings: the mean wait a uniform random poll delay implies, and
// the load if every poll were exactly one request.
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startGitServer } from '../pipeline/git-http-server.js';
import {
  EnforcerProcess,
  generateSigningKey,
  makeCapsule,
  Publisher,
  REPO_ROOT,
  sleep,
  tempDir,
  writeTrust,
} from '../testkit/control-plane.js';

export const summary = 'N enforcers on one git server: time until all enforce a new capsule, idle request load';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { n: { type: 'string' }, 'idle-s': { type: 'string' }, 'poll-min-ms': { type: 'string' }, 'poll-max-ms': { type: 'string' } },
    strict: false,
  });
  const n = Number(values.n ?? 20);
  const idleS = Number(values['idle-s'] ?? 30);
  const pollMin = Number(values['poll-min-ms'] ?? 2000);
  const pollMax = Number(values['poll-max-ms'] ?? 5000);
  const srv = await startGitServer();
  const dir = await tempDir('bench-fleet');
  // The enforcers run from a private copy of dist/ inside the repository (so node_modules
  // still resolves): a rebuild of the shared tree while 100 processes start must not
  // hand some of them half-written modules.
  const snapshot = join(REPO_ROOT, '.cache', `fleet-dist-${process.pid}`);
  await cp(join(REPO_ROOT, 'dist'), snapshot, { recursive: true });
  const cli = join(snapshot, 'cli/main.js');
  const fleet: EnforcerProcess[] = [];
  const pub = await (async () => {
    await srv.createBareRepo('policies.git');
    return Publisher.create(srv.repoUrl('policies.git'));
  })();
  try {
    const key = generateSigningKey();
    const trust = await writeTrust(dir, [key]);
    await pub.publish(await makeCapsule(key, 1));
    const args = (i: number | string) => [
      '--git',
      srv.repoUrl('policies.git'),
      '--trust',
      trust,
      '--state-dir',
      join(dir, `e${i}`),
      '--no-kernel',
      '--no-dataplane',
      '--poll-min-ms',
      String(pollMin),
      '--poll-max-ms',
      String(pollMax),
      '--timeout-ms',
      '30000',
      '--audit',
      join(dir, `e${i}`, 'audit.jsonl'),
    ];

    // Baseline in the same run: one enforcer alone picks up watermark 1 → 0 (a
    // separate branch would need its own server; instead it follows the same one
    // and the fleet later starts from watermark 1 as well).
    const solo = new EnforcerProcess(args('solo'), join(dir, 'solo.sock'), {}, cli);
    fleet.push(solo);
    await solo.waitFor((s) => s.active?.watermark === 1, 'solo first capsule', 600_000, 200);
    await sleep(pollMax);
    await pub.publish(await makeCapsule(key, 2));
    const soloVisible = Date.now();
    const soloSt = await solo.waitFor((s) => s.active?.watermark === 2, 'solo watermark 2', 120_000, 200);
    const single = Date.parse(soloSt.active!.activated_at) - soloVisible;
    await solo.kill('SIGKILL');
    fleet.length = 0;
    const t0 = Date.now();
    // Started a little apart, as a fleet rolls out; status polled gently (the bench
    // process also hosts the git server).
    for (let i = 0; i < n; i++) {
      fleet.push(new EnforcerProcess(args(i), join(dir, `e${i}.sock`), {}, cli));
      await sleep(n > 40 ? 500 : 250);
    }
    await Promise.all(fleet.map((e) => e.waitFor((s) => s.active?.watermark === 2, 'first capsule', 600_000, 1000)));
    process.stdout.write(
      `  ${n} enforcers started and enforcing watermark 2 after ${((Date.now() - t0) / 1000).toFixed(1)} s (process start included)\n`,
    );

    // Idle load: nothing published, count what the fleet asks the server.
    await sleep(pollMax); // let the start-up fetches settle
    const r0 = srv.requestCount();
    await sleep(idleS * 1000);
    const idleReqs = srv.requestCount() - r0;
    const perMin = idleReqs / n / (idleS / 60);
    const meanPoll = (pollMin + pollMax) / 2;

    // Propagation: publish, then read each enforcer's own activation time.
    const pushed = Date.now();
    await pub.publish(await makeCapsule(key, 3));
    const visible = Date.now();
    const sts = await Promise.all(fleet.map((e) => e.waitFor((s) => s.active?.watermark === 3, 'watermark 3', 300_000, 500)));
    const lat = sts.map((s) => Date.parse(s.active!.activated_at) - visible);
    const seen = sts.map((s) => Date.parse(s.sync.sources[0].last_change_at!) - visible);
    const act = sts.map((s) => Date.parse(s.active!.activated_at) - Date.parse(s.sync.sources[0].last_change_at!));
    // Mean residual wait of a renewal process with U[min,max] gaps: E[X²] / 2E[X].
    const ex2 = (pollMax ** 3 - pollMin ** 3) / (3 * (pollMax - pollMin || 1));
    const residual = pollMax === pollMin ? pollMin / 2 : ex2 / (2 * meanPoll);

    process.stdout.write(`  poll delay uniform in [${pollMin}, ${pollMax}] ms; push took ${visible - pushed} ms\n`);
    process.stdout.write(
      `  time until enforced after the push: p50 ${pct(lat, 50)} ms, p90 ${pct(lat, 90)} ms, max ${Math.max(...lat)} ms (n=${n})\n`,
    );
    process.stdout.write(
      `    of which: branch move seen p50 ${pct(seen, 50)} ms, max ${Math.max(...seen)} ms; fetch + verify + build + persist + swap p50 ${pct(act, 50)} ms, max ${Math.max(...act)} ms\n`,
    );
    process.stdout.write(
      `    baseline: mean wait for the next poll alone ${residual.toFixed(0)} ms, worst ${pollMax} ms; one enforcer alone (same run): ${single} ms\n`,
    );
    process.stdout.write(`  idle git load: ${idleReqs} requests in ${idleS} s = ${perMin.toFixed(1)} requests per enforcer per minute\n`);
    process.stdout.write(`    baseline: one request per poll = ${(60_000 / meanPoll).toFixed(1)} per enforcer per minute\n`);
  } finally {
    await Promise.all(fleet.map((e) => e.kill('SIGKILL')));
    await pub.dispose();
    await srv.dispose();
    await rm(dir, { recursive: true, force: true });
    await rm(snapshot, { recursive: true, force: true });
  }
}
