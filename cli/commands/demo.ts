// `lilith demo` (what `npm start` runs): the pipeline on the bundled policies,
// one readable step at a time — validate → development key → sign → verify.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCommandArgs, runCommand } from '../args.js';
import {
  generateSigningKey,
  parseTrust,
  readSigningKey,
  readState,
  signCapsule,
  stateFor,
  trustFromKeys,
  verifyCapsule,
  writeKeyFiles,
  writeStateAtomic,
  type SigningKey,
} from '../../capsule/index.js';
import { buildPayload, parseDuration } from '../../pipeline/capsule-build.js';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { formatDiagnostic, validatePolicySource } from '../../pipeline/validate.js';

export const summary = 'run the pipeline on the bundled policies: validate, sign with a dev key, verify';

export const usage = `usage: lilith demo [--policies DIR] [--work DIR]

  --policies DIR   policy repository (default ./policies)
  --work DIR       where the development key, capsule and state go (default ./.cache)
The development key (DIR/dev-keys/dev.key) is created once and reused. It is for
local use only: production keys belong to the release pipeline.
`;

const say = (line: string) => process.stdout.write(line + '\n');

async function devKey(dir: string): Promise<{ key: SigningKey; created: boolean }> {
  const path = join(dir, 'dev.key');
  if (await stat(path).catch(() => null)) return { key: await readSigningKey(path), created: false };
  const key = generateSigningKey();
  await writeKeyFiles(dir, key, 'dev');
  await writeFile(join(dir, 'trust.json'), JSON.stringify(trustFromKeys([key], 1), null, 2) + '\n');
  return { key, created: true };
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(argv, { policies: { type: 'string', default: 'policies' }, work: { type: 'string', default: '.cache' } }, usage);
    const policiesDir = values.policies;
    const keysDir = join(values.work, 'dev-keys');
    const stateDir = join(values.work, 'demo-state');
    const capsulePath = join(values.work, 'demo-capsule.json');
    await mkdir(values.work, { recursive: true });

    say(`1. validate ${policiesDir}`);
    const src = await readPolicyDir(policiesDir);
    const report = validatePolicySource(src);
    for (const d of report.diagnostics) say(`   ${formatDiagnostic(d, join(policiesDir, d.file), 'text')}`);
    if (report.errorCount > 0) {
      say(`   ${report.errorCount} error(s): fix them and run again`);
      return 1;
    }
    say(`   ok: ${report.policyIds.length} policies, ${report.invariantIds.length} invariants, schema, entities and lilith.json valid`);

    say(`2. development signing key (${keysDir})`);
    const { key, created } = await devKey(keysDir);
    say(`   ${created ? 'created' : 'reused'} key ${key.keyid.slice(0, 16)}…`);

    say('3. sign');
    const state = await readState(stateDir);
    const watermark = (state?.watermark ?? 0) + 1;
    const payload = buildPayload(src, { watermark, now: new Date(), validityMs: parseDuration('1d')!, sourceCommit: null });
    const bytes = signCapsule(payload, [key]);
    await writeFile(capsulePath, bytes);
    say(`   ${capsulePath}: watermark ${watermark}, ${bytes.length} bytes, expires ${payload.expires_at}`);

    say('4. verify (as an enforcer would) and record the acceptance');
    const trust = parseTrust(await readFile(join(keysDir, 'trust.json')), 'dev trust file');
    const verified = verifyCapsule(await readFile(capsulePath), trust, state, new Date());
    await writeStateAtomic(stateDir, stateFor(verified, new Date()));
    say(`   valid: signed by ${verified.keyids.length}/${trust.threshold} trusted key(s), payload sha256 ${verified.digest.slice(0, 16)}…`);
    say(`   anti-rollback state ${join(stateDir, 'state.json')}: watermark ${watermark} (previous ${state?.watermark ?? 'none'})`);

    say('');
    say(`Capsule ready. Publish it with: lilith publish ${capsulePath} --repo <policy repo URL or path>`);
    return 0;
  });
}
