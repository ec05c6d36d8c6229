// Step 3 (and again in step 6): the release job of .github/workflows/release.yml —
// sign main's policies with the release key (watermark auto, proof digest from
// the gate's report) and publish the capsule to the capsules branch on a real
// git smart-HTTP server (`git http-backend`).
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { peekCapsule } from '../../capsule/index.js';
import { startGitServer } from '../../pipeline/git-http-server.js';
import type { DemoContext, ReleaseOutcome } from './context.js';
import { say } from './narrate.js';
import { git, lilith } from './shell.js';

/** The git server enforcers follow, with main pushed to it; sets ctx.gitUrl. */
export async function startCapsuleServer(ctx: DemoContext): Promise<void> {
  const server = await startGitServer();
  ctx.cleanup.add('git server', () => server.dispose());
  await server.createBareRepo('policies.git');
  ctx.gitUrl = server.repoUrl('policies.git');
  say(`   git smart-HTTP server (git http-backend): ${ctx.gitUrl}`);
  const keys = join(ctx.work, 'keys');
  const r = await lilith(['keygen', '--out', keys, '--name', 'release']);
  if (r.exitCode !== 0) throw new Error(`lilith keygen failed: ${r.stderr}`);
  ctx.keys = { key: join(keys, 'release.key'), trust: join(keys, 'trust.json') };
  say(`   release key: lilith keygen --out keys --name release → ${r.stdout.split('\n')[0]?.replace(/\s+/g, ' ')}`);
}

export async function release(ctx: DemoContext, proofReport: string | null): Promise<ReleaseOutcome> {
  await git(ctx.repo, ['push', '-q', ctx.gitUrl, 'main']);
  const commit = await git(ctx.repo, ['rev-parse', 'HEAD']);
  await mkdir(join(ctx.work, 'capsules'), { recursive: true });
  const n = ctx.outcome.releases.length + 1;
  const capsule = join(ctx.work, 'capsules', `release-${n}.json`);
  const proof = proofReport && existsSync(proofReport) ? ['--proof', proofReport] : [];
  const signArgs = ['sign', join(ctx.repo, 'policies'), '--key', ctx.keys.key, '--watermark', 'auto', '--repo', ctx.gitUrl, ...proof];
  say(
    `   $ lilith sign policies --key release.key --watermark auto --repo ${ctx.gitUrl}${proof.length ? ' --proof proof.json' : ''} --out capsule.json`,
  );
  const signed = await lilith([...signArgs, '--expires', '1d', '--out', capsule]);
  if (signed.exitCode !== 0) throw new Error(`lilith sign exited ${signed.exitCode}: ${signed.stderr || signed.stdout}`);
  const { payload, digest } = peekCapsule(await readFile(capsule));
  say(`     watermark ${payload.watermark}, source commit ${commit.slice(0, 12)}, payload sha256 ${digest.slice(0, 16)}…`);
  say(`   $ lilith publish capsule.json --repo ${ctx.gitUrl} --trust trust.json`);
  const published = await lilith(['publish', capsule, '--repo', ctx.gitUrl, '--trust', ctx.keys.trust]);
  if (published.exitCode !== 0) throw new Error(`lilith publish exited ${published.exitCode}: ${published.stderr}`);
  say(`     ${published.stdout.trim()}`);
  const outcome: ReleaseOutcome = {
    watermark: payload.watermark,
    digest,
    capsule,
    source_commit: commit,
    sign_exit: signed.exitCode,
    publish_exit: published.exitCode,
  };
  ctx.outcome.releases.push(outcome);
  return outcome;
}
