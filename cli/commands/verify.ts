// `lilith verify FILE --trust FILE [--state DIR]`: the same checks an enforcer
// runs before activating a capsule; with --state, records the acceptance.
import { readFile } from 'node:fs/promises';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import {
  CapsuleError,
  MAX_CAPSULE_BYTES,
  parseTrust,
  readState,
  stateFor,
  TRUST_PAYLOAD_TYPE,
  verifyCapsule,
  verifyTrustUpdate,
  writeStateAtomic,
} from '../../capsule/index.js';
import { open, writeFile } from 'node:fs/promises';
import { contentRefusal } from '../../enforcer/control/index.js';

export const summary = 'verify a capsule (signatures, threshold, expiry, anti-rollback state)';

export const usage = `usage: lilith verify FILE --trust FILE [--state DIR] [--at TIME]
       lilith verify TRUST_UPDATE --trust CURRENT_TRUST [--write-trust NEW_TRUST]

Checks, in order: size cap, envelope, signatures by distinct trusted keys
(threshold), payload, validity window, with --state the anti-rollback state
in DIR/state.json, then every content check an enforcer runs before
activation: lilith.json, policies and invariants in Cedar strict mode against
the schema (invalid_policies), entities against the schema (invalid_entities),
lilith.json against both (invalid_config: taint labels the policies test, zones
and groups it names), and the engine build. A capsule that passes with --state is recorded as
accepted (the file is replaced atomically).
  --at TIME   check as of this ISO 8601 time instead of now (state is not written)
A trust update (from lilith sign --trust-update) is accepted only when signed by
the current threshold of current keys and by its own threshold of its own keys;
--write-trust then writes the new plain trust file.
Exit status: 0 valid, 1 refused (the reason and its code are printed), 2 usage,
I/O, unusable trust file or corrupt state.
`;

/** Reads at most cap+1 bytes, so an oversized file is refused without reading it all. */
async function readCapped(path: string, cap: number): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(cap + 1);
    let total = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, total, buf.length - total, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total === buf.length) break;
    }
    return buf.subarray(0, total);
  } finally {
    await fh.close();
  }
}

/** Whether the envelope announces a trust update (a cheap look; verification decides). */
function isTrustUpdate(bytes: Uint8Array): boolean {
  try {
    return (JSON.parse(Buffer.from(bytes).toString('utf8')) as { payloadType?: unknown })?.payloadType === TRUST_PAYLOAD_TYPE;
  } catch {
    return false;
  }
}

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values, positionals } = parseCommandArgs(
      argv,
      { trust: { type: 'string' }, state: { type: 'string' }, at: { type: 'string' }, 'write-trust': { type: 'string' } },
      usage,
    );
    if (positionals.length !== 1 || !values.trust) throw new UsageError(usage.trimEnd());
    const now = values.at ? new Date(values.at) : new Date();
    if (Number.isNaN(now.getTime())) throw new UsageError(`--at: "${values.at}" is not an ISO 8601 time`);
    const file = positionals[0];
    try {
      const trust = parseTrust(await readFile(values.trust), values.trust);
      const state = values.state ? await readState(values.state) : null;
      const bytes = await readCapped(file, MAX_CAPSULE_BYTES);
      if (isTrustUpdate(bytes)) {
        const next = verifyTrustUpdate(bytes, trust, now);
        if (values['write-trust']) await writeFile(values['write-trust'], JSON.stringify(next.file, null, 2) + '\n');
        process.stdout.write(
          `valid trust update: ${next.keys.size} key(s), threshold ${next.threshold}${values['write-trust'] ? `; written to ${values['write-trust']}` : ''}\n`,
        );
        return 0;
      }
      if (values['write-trust']) throw new UsageError('--write-trust applies to trust updates only');
      const verified = verifyCapsule(bytes, trust, state, now);
      const p = verified.payload;
      // What activation checks after the signatures: lilith.json, strict validation, entities, config fit, engine build.
      const refusal = contentRefusal(p);
      if (refusal) {
        process.stderr.write(`lilith verify: refused (${refusal.code}): ${refusal.reason}\n`);
        return 1;
      }
      if (values.state && !values.at && !verified.alreadyAccepted) await writeStateAtomic(values.state, stateFor(verified, now));
      const stateNote = !values.state
        ? ''
        : verified.alreadyAccepted
          ? '\nstate: already accepted (same watermark and digest)'
          : values.at
            ? '\nstate: not written (--at)'
            : `\nstate: recorded in ${values.state}`;
      process.stdout.write(
        `valid: ${file}: watermark ${p.watermark}, ${Object.keys(p.policies).length} policy file(s), expires ${p.expires_at}\n` +
          `payload sha256 ${verified.digest}\n` +
          `signed by ${verified.keyids.length} of threshold ${trust.threshold}: ${verified.keyids.map((k) => k.slice(0, 16)).join(', ')}` +
          `${p.source_commit ? `\nsource commit ${p.source_commit}` : ''}${p.proof_digest ? `\nproof report sha256 ${p.proof_digest}` : ''}${stateNote}\n`,
      );
      return 0;
    } catch (err) {
      if (err instanceof CapsuleError) {
        const fatal = err.code === 'bad_trust' || err.code === 'state_corrupt';
        process.stderr.write(`lilith verify: ${fatal ? 'cannot verify' : 'refused'} (${err.code}): ${err.message}\n`);
        return fatal ? 2 : 1;
      }
      throw err;
    }
  });
}
