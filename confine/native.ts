// Locates the native helpers built by confine/native/Makefile and reports the
// kernel's Landlock ABI and what each ABI level does not enforce.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { DegradableLayer } from '../capsule/config.js';
import { missingLayers, type KernelSupport } from './degraded.js';

// dist/confine/native.js and confine/native.ts both sit two levels below the project root.
const ROOT = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  existsSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json')) ? '' : '..',
);

export const CONFINE_BIN = join(ROOT, 'confine', 'native', 'build', 'lilith-confine');
export const ESCAPE_PROBE_BIN = join(ROOT, 'confine', 'native', 'build', 'escape-probe');

export function requireHelper(): string {
  if (!existsSync(CONFINE_BIN)) throw new Error(`${CONFINE_BIN} is missing: run \`npm run build\` (needs libseccomp-dev)`);
  return CONFINE_BIN;
}

/** What this kernel supports, as lilith-confine sees it (it honours the LILITH_TEST_LANDLOCK_ABI test hook). */
export function kernelSupport(): KernelSupport {
  const out = JSON.parse(execFileSync(requireHelper(), ['--abi'], { encoding: 'utf8' })) as { landlock_abi: number; seccomp: boolean };
  return { landlockAbi: out.landlock_abi, seccomp: out.seccomp };
}

export interface LandlockSupport {
  abi: number;
  /** Human-readable list of what this kernel's Landlock cannot enforce. */
  notEnforced: string[];
  /** The layers an agent would run without here (allow_degraded names). */
  missing: DegradableLayer[];
}

export function landlockSupport(): LandlockSupport {
  const kernel = kernelSupport();
  const abi = kernel.landlockAbi;
  const notEnforced: string[] = [];
  if (abi < 1) notEnforced.push('filesystem rules (Landlock unavailable)');
  if (abi < 2) notEnforced.push('file reparenting (REFER)');
  if (abi < 3) notEnforced.push('truncate');
  if (abi < 4) notEnforced.push('TCP bind/connect port rules');
  if (abi < 5) notEnforced.push('device ioctl');
  if (abi < 6) notEnforced.push('abstract unix socket and signal scoping');
  return { abi, notEnforced, missing: missingLayers(kernel).map((m) => m.layer) };
}
