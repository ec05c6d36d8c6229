// `lilith sign [DIR]`: validate a policy repository and sign it into a capsule.
import { writeFile, stat } from 'node:fs/promises';
import fs from 'node:fs';
import { resolve } from 'node:path';
import git from 'isomorphic-git';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import {
  readSigningKey,
  signCapsule,
  peekCapsule,
  signTrustUpdate,
  parseTrust,
  parseTrustValue,
  trustFromKeys,
  type SigningKey,
} from '../../capsule/index.js';
import { writeFileAtomic } from '../../capsule/atomic-file.js';
import { readFile } from 'node:fs/promises';
import { buildPayload, DEFAULT_VALIDITY, fileDigest, parseDuration } from '../../pipeline/capsule-build.js';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { DEFAULT_BRANCH, latestPublished } from '../../pipeline/publish.js';
import { formatDiagnostic, validatePolicySource } from '../../pipeline/validate.js';

export const summary = 'validate and sign a policy directory into a capsule';

export const usage = `usage: lilith sign [DIR] --key FILE [--key FILE ...] --watermark N|auto --out FILE
                   [--expires 30d] [--proof REPORT.json] [--source-commit SHA]
                   [--repo URL|DIR] [--branch capsules] [--trust FILE]
       lilith sign --trust-update NEW_TRUST.json --key FILE [--key FILE ...] --out FILE

DIR defaults to ./policies. The directory is validated first (as by lilith
validate); a capsule is signed only when it is clean.
  --key FILE          secret key file (from lilith keygen); repeat for threshold signing
  --watermark N|auto  capsule watermark; auto = one more than the capsule published
                      on --branch of --repo (1 when none); only a capsule that
                      verifies (against --trust, else signed by one of the --key
                      keys) counts: unverifiable commits are reported and skipped
  --expires DURATION  validity from now: Ns, Nm, Nh, Nd or Nw (default ${DEFAULT_VALIDITY})
  --proof FILE        proof report; its sha256 is recorded as proof_digest
  --source-commit SHA policy repository commit (default: HEAD of the git repository
                      holding DIR, if any)

--trust-update signs a new trust file for key rotation instead of a capsule:
give k of the current keys and k of the new file's keys (verify it with
lilith verify FILE --trust CURRENT_TRUST --write-trust NEW_TRUST).
Exit status: 0 signed, 1 validation errors, 2 usage or I/O error.
`;

async function headCommit(dir: string): Promise<string | null> {
  try {
    const root = await git.findRoot({ fs, filepath: resolve(dir) });
    return await git.resolveRef({ fs, dir: root, ref: 'HEAD' });
  } catch {
    return null;
  }
}

async function signTrust(newTrustPath: string, keyPaths: string[], out: string | undefined): Promise<number> {
  if (!keyPaths.length || !out) throw new UsageError(`--trust-update needs --key and --out\n\n${usage.trimEnd()}`);
  const next = parseTrust(await readFile(newTrustPath), newTrustPath);
  const keys: SigningKey[] = [];
  for (const path of keyPaths) keys.push(await readSigningKey(path));
  const bytes = signTrustUpdate(next.file, keys);
  await writeFile(out, bytes);
  const own = keys.filter((k) => next.keys.has(k.keyid)).length;
  process.stdout.write(
    `signed trust update ${out}: ${next.keys.size} key(s), threshold ${next.threshold}; signed by ${keys.length} key(s), ${own} of them in the new file\n`,
  );
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        key: { type: 'string', multiple: true },
        watermark: { type: 'string' },
        out: { type: 'string', short: 'o' },
        expires: { type: 'string', default: DEFAULT_VALIDITY },
        proof: { type: 'string' },
        'source-commit': { type: 'string' },
        repo: { type: 'string' },
        branch: { type: 'string', default: DEFAULT_BRANCH },
        'trust-update': { type: 'string' },
        trust: { type: 'string' },
      },
      usage,
    );
    if (values['trust-update'] !== undefined) return signTrust(values['trust-update'], values.key ?? [], values.out);
    if (positionals.length > 1) throw new UsageError(`expected at most one directory\n\n${usage.trimEnd()}`);
    if (!values.key?.length || !values.watermark || !values.out)
      throw new UsageError(`--key, --watermark and --out are required\n\n${usage.trimEnd()}`);
    const validityMs = parseDuration(values.expires);
    if (validityMs === null) throw new UsageError(`--expires: "${values.expires}" is not a duration like 30d, 12h, 90m`);
    if (values.watermark === 'auto' && !values.repo) throw new UsageError('--watermark auto needs --repo (where capsules are published)');
    if (values.watermark !== 'auto' && !/^\d+$/.test(values.watermark))
      throw new UsageError('--watermark must be a non-negative integer or "auto"');
    if (values['source-commit'] !== undefined && !/^[0-9a-f]{7,64}$/.test(values['source-commit']))
      throw new UsageError('--source-commit must be a hex commit id');
    const dir = positionals[0] ?? 'policies';

    const keys: SigningKey[] = [];
    for (const path of values.key) {
      keys.push(await readSigningKey(path));
      if ((await stat(path)).mode & 0o077) process.stderr.write(`lilith sign: warning: ${path} is readable by others (chmod 600 it)\n`);
    }
    if (new Set(keys.map((k) => k.keyid)).size !== keys.length)
      throw new UsageError('the same key was given twice (a key counts once towards the threshold)');

    const src = await readPolicyDir(dir);
    const report = validatePolicySource(src);
    if (report.errorCount > 0) {
      for (const d of report.diagnostics) process.stdout.write(formatDiagnostic(d, `${dir}/${d.file}`, 'text') + '\n');
      process.stderr.write(`lilith sign: ${dir} has ${report.errorCount} validation error(s); nothing signed\n`);
      return 1;
    }

    let watermark: number;
    if (values.watermark === 'auto') {
      const trust = values.trust
        ? parseTrust(await readFile(values.trust), values.trust)
        : parseTrustValue(trustFromKeys(keys, 1), 'the --key keys');
      const latest = await latestPublished({ repo: values.repo!, branch: values.branch }, trust);
      for (const s of latest?.skipped ?? [])
        process.stderr.write(
          `lilith sign: warning: ${values.branch} commit ${s.commit.slice(0, 12)} does not verify, its watermark is ignored: ${s.reason}\n`,
        );
      if (latest && latest.watermark < 0) {
        process.stderr.write(
          `lilith sign: none of the last commits of ${values.branch} holds a capsule that verifies; give --watermark N\n`,
        );
        return 2;
      }
      watermark = (latest?.watermark ?? 0) + 1;
    } else {
      watermark = Number(values.watermark);
      if (!Number.isSafeInteger(watermark)) throw new UsageError('--watermark is too large');
    }
    const payload = buildPayload(src, {
      watermark,
      now: new Date(),
      validityMs,
      sourceCommit: values['source-commit'] ?? (await headCommit(dir)),
      ...(values.proof ? { proofDigest: await fileDigest(values.proof) } : {}),
    });
    const bytes = signCapsule(payload, keys);
    await writeFileAtomic(values.out, bytes);
    const { digest } = peekCapsule(bytes);
    process.stdout.write(
      `signed ${values.out}: watermark ${watermark}, ${report.policyIds.length} policies, expires ${payload.expires_at}\n` +
        `payload sha256 ${digest}\nsigned by ${keys.map((k) => k.keyid.slice(0, 16)).join(', ')}\n`,
    );
    return 0;
  });
}
