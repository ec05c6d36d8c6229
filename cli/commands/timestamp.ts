// `lilith timestamp`: the timestamp role's short-lived statement that the capsule at the
// tip of the branch is current. CI runs it on a schedule (well inside stale_after_s);
// enforcers that stop seeing fresh ones show STALE and, past fail_after_s, fail closed.
import { readFile, stat } from 'node:fs/promises';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import {
  CapsuleError,
  parseTrust,
  peekCapsule,
  readSigningKey,
  signTimestamp,
  verifyCapsuleSignatures,
  type SigningKey,
} from '../../capsule/index.js';
import { writeFileAtomic } from '../../capsule/atomic-file.js';
import { parseDuration } from '../../pipeline/capsule-build.js';
import { DEFAULT_BRANCH, PublishError, publishDocument, tipCapsule } from '../../pipeline/publish.js';

export const summary = 'sign a short-lived timestamp for the current capsule (freshness; run from CI on a schedule)';

export const usage = `usage: lilith timestamp --key FILE [--key FILE ...] --repo URL|DIR [--branch ${DEFAULT_BRANCH}]
                        [--trust FILE] [--expires 1h] [--out FILE]
       lilith timestamp --key FILE [--key FILE ...] --capsule FILE --out FILE [--trust FILE] [--expires 1h]

Signs "the capsule with payload digest D and watermark W is current as of now,
until now + --expires" with the timestamp role's keys (k of them for a k-of-n role).
With --repo it reads the capsule at the tip of --branch and commits the timestamp
there as timestamp.json (a new commit; capsule.json and trust/ are kept), which
enforcers pick up on their next sync. With --capsule it only writes --out (for a
drop directory). With --trust (recommended) the capsule must verify against the
capsule role first: a timestamp never vouches for an unverified tip, and --expires
must not exceed the role's fail_after_s.
Run it more often than the trust file's timestamp.stale_after_s.
  --expires DURATION  Ns, Nm, Nh, Nd (default 1h)
Exit status: 0 signed (and published), 1 refused (tip does not verify), 2 usage or I/O error.
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        key: { type: 'string', multiple: true },
        repo: { type: 'string' },
        branch: { type: 'string', default: DEFAULT_BRANCH },
        capsule: { type: 'string' },
        trust: { type: 'string' },
        expires: { type: 'string', default: '1h' },
        out: { type: 'string', short: 'o' },
      },
      usage,
    );
    if (positionals.length || !values.key?.length || (!values.repo && !values.capsule) || (values.repo && values.capsule))
      throw new UsageError(usage.trimEnd());
    if (values.capsule && !values.out) throw new UsageError('--capsule needs --out');
    const validityMs = parseDuration(values.expires);
    if (validityMs === null) throw new UsageError(`--expires: "${values.expires}" is not a duration like 1h, 30m`);
    const keys: SigningKey[] = [];
    for (const path of values.key) {
      keys.push(await readSigningKey(path));
      if ((await stat(path)).mode & 0o077)
        process.stderr.write(`lilith timestamp: warning: ${path} is readable by others (chmod 600 it)\n`);
    }
    const trust = values.trust ? parseTrust(await readFile(values.trust), values.trust) : null;
    const role = trust?.roles.timestamp;
    if (trust && !role) throw new UsageError(`${values.trust} has no timestamp role: enforcers with it ignore timestamps`);
    if (role && validityMs > role.failAfterMs)
      throw new UsageError(`--expires ${values.expires} is longer than the timestamp role's fail_after_s (${role.failAfterMs / 1000} s)`);
    const target = values.repo ? { repo: values.repo, branch: values.branch } : null;
    try {
      let digest: string;
      let watermark: number;
      if (target) {
        const tip = await tipCapsule(target, trust);
        if (!tip) throw new PublishError('not_a_repository', `${values.branch} of ${values.repo} has no capsule yet`);
        ({ digest } = tip);
        watermark = tip.payload.watermark;
      } else {
        const bytes = await readFile(values.capsule!);
        const c = trust ? verifyCapsuleSignatures(bytes, trust) : peekCapsule(bytes);
        digest = c.digest;
        watermark = c.payload.watermark;
      }
      const now = new Date();
      const bytes = signTimestamp({ digest, watermark, now, validityMs }, keys);
      if (values.out) await writeFileAtomic(values.out, bytes);
      let where = values.out ?? '';
      if (target) {
        const res = await publishDocument(bytes, target, { trust, now });
        where = `${values.repo} ${values.branch} commit ${res.commit}${values.out ? ` and ${values.out}` : ''}`;
      }
      process.stdout.write(
        `timestamp for watermark ${watermark} (payload sha256 ${digest.slice(0, 16)}…) valid until ${new Date(now.getTime() + validityMs).toISOString()}: ${where}\n`,
      );
      return 0;
    } catch (err) {
      if (err instanceof CapsuleError) {
        process.stderr.write(`lilith timestamp: refused (${err.code}): ${err.message}\n`);
        return 1;
      }
      if (err instanceof PublishError) {
        process.stderr.write(`lilith timestamp: ${err.message}\n`);
        return 2;
      }
      throw err;
    }
  });
}
