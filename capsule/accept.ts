// Verify-and-record for callers with nothing to activate in between (the CLI's
// `verify --state`). The enforcer verifies, activates, and only then records.
import { readState, writeStateAtomic } from './state.js';
import type { Trust } from './trust.js';
import { stateFor, verifyCapsule, type VerifiedCapsule, type VerifyOptions } from './verify.js';

export async function acceptCapsule(
  bytes: Uint8Array,
  trust: Trust,
  stateDir: string,
  now: Date,
  options?: VerifyOptions,
): Promise<VerifiedCapsule> {
  const state = await readState(stateDir);
  const verified = verifyCapsule(bytes, trust, state, now, options);
  if (!verified.alreadyAccepted) await writeStateAtomic(stateDir, stateFor(verified, now, state));
  return verified;
}
