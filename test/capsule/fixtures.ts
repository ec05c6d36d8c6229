// Capsules for tests, built from the real bundled policy repository.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CAPSULE_FORMAT,
  generateSigningKey,
  parseTrust,
  trustFromKeys,
  type CapsulePayload,
  type SigningKey,
  type Trust,
} from '../../capsule/index.js';
import { readPolicyDir } from '../../pipeline/policy-source.js';
import { buildPayload } from '../../pipeline/capsule-build.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const POLICIES_DIR = join(REPO_ROOT, 'policies');
export const CLI = join(REPO_ROOT, 'dist/cli/main.js');

export const NOW = new Date('2026-06-01T12:00:00Z');
export const DAY = 86_400_000;

let cachedSource: Awaited<ReturnType<typeof readPolicyDir>> | undefined;

export async function payload(watermark: number, over: Partial<CapsulePayload> = {}, now = NOW): Promise<CapsulePayload> {
  cachedSource ??= await readPolicyDir(POLICIES_DIR);
  const p = buildPayload(cachedSource, { watermark, now, validityMs: 30 * DAY, sourceCommit: 'abc1234' });
  return { ...p, format: CAPSULE_FORMAT, ...over };
}

export function keys(n: number): SigningKey[] {
  return Array.from({ length: n }, () => generateSigningKey());
}

export function trustOf(ks: SigningKey[], threshold = 1, expiresAt?: Date): Trust {
  return parseTrust(JSON.stringify(trustFromKeys(ks, threshold, expiresAt)));
}

export async function tempDir(prefix = 'lilith-capsule-test-'): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export async function readBytes(path: string): Promise<Buffer> {
  return readFile(path);
}

/** Re-encodes an envelope after `edit` changes its JSON form. */
export function editEnvelope(
  bytes: Uint8Array,
  edit: (env: { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] }) => void,
): Uint8Array {
  const env = JSON.parse(Buffer.from(bytes).toString('utf8'));
  edit(env);
  return Buffer.from(JSON.stringify(env));
}
