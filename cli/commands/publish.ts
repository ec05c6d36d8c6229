// `lilith publish FILE --repo URL|DIR`: commit a signed capsule to the capsule
// branch and push it, where enforcers pick it up.
import { readFile } from 'node:fs/promises';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import { CAPSULE_PAYLOAD_TYPE, CapsuleError, envelopeTypeOf, parseTrust, verifyCapsule } from '../../capsule/index.js';
import { DEFAULT_BRANCH, PublishError, PublishRefusedError, publishCapsule, publishDocument } from '../../pipeline/publish.js';

export const summary = 'commit a signed capsule to the capsule branch and push it';

export const usage = `usage: lilith publish FILE --repo URL|DIR [--branch ${DEFAULT_BRANCH}] [--trust FILE]

Commits FILE as capsule.json (plus an unsigned CAPSULE.md summary) on --branch
of the repository and pushes it: --repo is an http(s) URL (smart HTTP; put
credentials in the URL if the server needs them) or a local repository path.
Refuses a capsule whose watermark is not above the published one; publishing
the same capsule again changes nothing. With --trust (recommended), the capsule
is verified before it is published, and so is the branch: commits whose capsule
does not verify are reported and skipped, so an unsigned tip claiming a huge
watermark cannot block a legitimately signed capsule.

FILE may also be a signed trust rotation (lilith trust sign), a root-signed reset
(lilith state sign-reset) or a timestamp (lilith timestamp --out): it is committed
beside the capsule at the tip as trust/<version>.json, reset.json or timestamp.json
(verified against --trust first when given), and enforcers apply it on their next sync.
Exit status: 0 published, 1 refused, 2 usage, I/O or network error.
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(
      argv,
      { repo: { type: 'string' }, branch: { type: 'string', default: DEFAULT_BRANCH }, trust: { type: 'string' } },
      usage,
    );
    if (positionals.length !== 1 || !values.repo) throw new UsageError(usage.trimEnd());
    const bytes = await readFile(positionals[0]);
    try {
      const trust = values.trust ? parseTrust(await readFile(values.trust), values.trust) : null;
      const type = envelopeTypeOf(bytes);
      if (type !== null && type !== CAPSULE_PAYLOAD_TYPE) {
        const doc = await publishDocument(bytes, { repo: values.repo, branch: values.branch }, { trust });
        process.stdout.write(
          doc.unchanged
            ? `already published: ${doc.path} at the tip of ${values.branch} (${doc.commit})\n`
            : `published ${doc.kind} as ${doc.path} to ${values.repo} ${values.branch}: commit ${doc.commit}\n`,
        );
        return 0;
      }
      if (trust) verifyCapsule(bytes, trust, null, new Date());
      const res = await publishCapsule(bytes, { repo: values.repo, branch: values.branch }, { trust });
      for (const s of res.skipped)
        process.stderr.write(
          `lilith publish: warning: ${values.branch} commit ${s.commit.slice(0, 12)} does not verify and was skipped: ${s.reason}\n`,
        );
      process.stdout.write(
        res.unchanged
          ? `already published: watermark ${res.watermark} is the tip of ${values.branch} (${res.commit})\n`
          : `published watermark ${res.watermark} to ${values.repo} ${values.branch}: commit ${res.commit}\n`,
      );
      return 0;
    } catch (err) {
      if (err instanceof CapsuleError) {
        process.stderr.write(`lilith publish: refused (${err.code}): ${err.message}\n`);
        return 1;
      }
      if (err instanceof PublishError) {
        process.stderr.write(`lilith publish: ${err.message}\n`);
        return err instanceof PublishRefusedError ? 1 : 2;
      }
      throw err;
    }
  });
}
