// Daemon settings (not policy: policy comes only from signed capsules). Each setting
// can come from a flag, an environment variable or a small JSON file, in that order of
// precedence. Errors name the setting and where its bad value came from.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineName } from '../../cedar/index.js';
import { checkWorkloadDirPath, DEFAULT_WORKLOAD_DIR, WorkloadDirError } from '../../identity/index.js';
import { DEFAULT_ADMIN_SOCKET } from '../client/index.js';

export interface DaemonConfig {
  /** Trust file: keys and threshold capsules must be signed with. */
  trust: string;
  /** Anti-rollback state, the persisted last-good capsule, the git clone. */
  stateDir: string;
  git: { url: string; branch: string; file: string } | null;
  /** Watched directory of capsule files (air-gapped drops). */
  capsuleDir: string | null;
  pollMinMs: number;
  pollMaxMs: number;
  backoffMaxMs: number;
  /** Deadline of every network step. */
  timeoutMs: number;
  maxCapsuleBytes: number;
  engine: EngineName;
  kernel: boolean;
  dataplane: boolean;
  adminSocket: string;
  /** Loopback health/metrics address; null = the capsule's proxy.admin_listen; "off" = none. */
  adminListen: string | null;
  /** Audit log (JSON lines); "-" = stdout. */
  audit: string;
  resetState: boolean;
  /** Operator metadata for containers' k8s:/docker: selectors (identity/workload-metadata.ts); node-local, so not in the capsule. */
  workloadMetadataDir: string;
}

export type DaemonConfigErrorCode =
  /** A setting has the wrong type or is out of range. */
  | 'bad_setting'
  /** A required setting is absent: the trust file, the state directory, a capsule source. */
  | 'missing_setting'
  /** The JSON settings file cannot be read, is not a JSON object, or names an unknown setting. */
  | 'bad_settings_file'
  /** The trust file cannot be read or parsed. */
  | 'bad_trust'
  /** An enabled part (kernel programs, dataplane) cannot run in this build or on this host. */
  | 'unavailable';

/** The daemon cannot start as configured: the CLI prints the message and exits 2. `code` says which kind. */
export class DaemonConfigError extends Error {
  override readonly name = 'DaemonConfigError';
  constructor(
    readonly code: DaemonConfigErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type Kind = 'string' | 'int' | 'bool' | 'engine';
interface Setting {
  key: keyof RawSettings;
  env: string;
  kind: Kind;
}

/** The settings in their external (JSON file / flag) spelling. */
export interface RawSettings {
  trust?: string;
  state_dir?: string;
  git_url?: string;
  git_branch?: string;
  git_file?: string;
  capsule_dir?: string;
  poll_min_ms?: number | string;
  poll_max_ms?: number | string;
  backoff_max_ms?: number | string;
  timeout_ms?: number | string;
  max_capsule_bytes?: number | string;
  engine?: string;
  kernel?: boolean | string;
  dataplane?: boolean | string;
  admin_socket?: string;
  admin_listen?: string;
  audit?: string;
  reset_state?: boolean | string;
  workload_metadata_dir?: string;
}

const SETTINGS: Setting[] = [
  { key: 'trust', env: 'LILITH_TRUST', kind: 'string' },
  { key: 'state_dir', env: 'LILITH_STATE_DIR', kind: 'string' },
  { key: 'git_url', env: 'LILITH_GIT_URL', kind: 'string' },
  { key: 'git_branch', env: 'LILITH_GIT_BRANCH', kind: 'string' },
  { key: 'git_file', env: 'LILITH_GIT_FILE', kind: 'string' },
  { key: 'capsule_dir', env: 'LILITH_CAPSULE_DIR', kind: 'string' },
  { key: 'poll_min_ms', env: 'LILITH_POLL_MIN_MS', kind: 'int' },
  { key: 'poll_max_ms', env: 'LILITH_POLL_MAX_MS', kind: 'int' },
  { key: 'backoff_max_ms', env: 'LILITH_BACKOFF_MAX_MS', kind: 'int' },
  { key: 'timeout_ms', env: 'LILITH_TIMEOUT_MS', kind: 'int' },
  { key: 'max_capsule_bytes', env: 'LILITH_MAX_CAPSULE_BYTES', kind: 'int' },
  { key: 'engine', env: 'LILITH_ENGINE', kind: 'engine' },
  { key: 'kernel', env: 'LILITH_KERNEL', kind: 'bool' },
  { key: 'dataplane', env: 'LILITH_DATAPLANE', kind: 'bool' },
  { key: 'admin_socket', env: 'LILITH_ADMIN_SOCKET', kind: 'string' },
  { key: 'admin_listen', env: 'LILITH_ADMIN_LISTEN', kind: 'string' },
  { key: 'audit', env: 'LILITH_AUDIT', kind: 'string' },
  { key: 'reset_state', env: 'LILITH_RESET_STATE', kind: 'bool' },
  { key: 'workload_metadata_dir', env: 'LILITH_WORKLOAD_METADATA_DIR', kind: 'string' },
];

export const DEFAULTS = {
  git_branch: 'capsules',
  git_file: 'capsule.json',
  poll_min_ms: 2000,
  poll_max_ms: 5000,
  backoff_max_ms: 60_000,
  timeout_ms: 10_000,
  max_capsule_bytes: 16 * 1024 * 1024,
  engine: 'fast' as EngineName,
  admin_socket: DEFAULT_ADMIN_SOCKET,
  workload_metadata_dir: DEFAULT_WORKLOAD_DIR,
};

function convert(s: Setting, value: unknown, from: string): unknown {
  const bad = (what: string) => new DaemonConfigError('bad_setting', `${s.key} (${from}): ${what}, got ${JSON.stringify(value)}`);
  switch (s.kind) {
    case 'string':
      if (typeof value !== 'string' || value === '') throw bad('expected a non-empty string');
      return value;
    case 'int': {
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(n) || n < 0) throw bad('expected a non-negative integer');
      return n;
    }
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 'yes') return true;
      if (value === 'false' || value === '0' || value === 'no') return false;
      throw bad('expected true or false');
    case 'engine':
      if (value !== 'fast' && value !== 'wasm') throw bad("expected 'fast' or 'wasm'");
      return value;
  }
}

/** Reads the optional JSON settings file. */
export function readSettingsFile(path: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new DaemonConfigError('bad_settings_file', `cannot read settings file ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DaemonConfigError('bad_settings_file', `settings file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const bad = (what: string) => new DaemonConfigError('bad_settings_file', `settings file ${path}: ${what}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('expected a JSON object');
  const known = new Set(SETTINGS.map((s) => s.key as string));
  for (const k of Object.keys(value)) if (!known.has(k)) throw bad(`unknown setting '${k}' (known: ${[...known].join(', ')})`);
  return value as RawSettings;
}

/** Merges flags > environment > file > defaults and checks the result. */
export function resolveDaemonConfig(
  flags: RawSettings,
  env: NodeJS.ProcessEnv = process.env,
  file: RawSettings = {},
  fileName = 'settings file',
): DaemonConfig {
  const v: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    if (flags[s.key] !== undefined) v[s.key] = convert(s, flags[s.key], 'flag');
    else if (env[s.env] !== undefined && env[s.env] !== '') v[s.key] = convert(s, env[s.env], `env ${s.env}`);
    else if (file[s.key] !== undefined) v[s.key] = convert(s, file[s.key], fileName);
    else if (s.key in DEFAULTS) v[s.key] = DEFAULTS[s.key as keyof typeof DEFAULTS];
  }
  if (!v.trust)
    throw new DaemonConfigError('missing_setting', 'no trust file: pass --trust FILE (or LILITH_TRUST, or "trust" in the settings file)');
  if (!v.state_dir)
    throw new DaemonConfigError('missing_setting', 'no state directory: pass --state-dir DIR (or LILITH_STATE_DIR, or "state_dir")');
  if (!v.git_url && !v.capsule_dir)
    throw new DaemonConfigError('missing_setting', 'no capsule source: pass --git URL and/or --capsule-dir DIR');
  const pollMin = v.poll_min_ms as number;
  const pollMax = v.poll_max_ms as number;
  if (pollMin < 50) throw new DaemonConfigError('bad_setting', `poll_min_ms must be at least 50, got ${pollMin}`);
  if (pollMax < pollMin) throw new DaemonConfigError('bad_setting', `poll_max_ms (${pollMax}) must be at least poll_min_ms (${pollMin})`);
  if ((v.timeout_ms as number) < 100) throw new DaemonConfigError('bad_setting', `timeout_ms must be at least 100, got ${v.timeout_ms}`);
  if ((v.max_capsule_bytes as number) < 1024)
    throw new DaemonConfigError('bad_setting', `max_capsule_bytes must be at least 1024, got ${v.max_capsule_bytes}`);
  if (v.git_url) {
    const url = v.git_url as string;
    if (!/^https?:\/\//.test(url))
      throw new DaemonConfigError('bad_setting', `git_url must be an http:// or https:// URL (smart HTTP), got ${url}`);
  }
  try {
    checkWorkloadDirPath(v.workload_metadata_dir as string);
  } catch (err) {
    if (!(err instanceof WorkloadDirError)) throw err;
    throw new DaemonConfigError('bad_setting', `workload_metadata_dir: ${err.message}`);
  }
  const stateDir = v.state_dir as string;
  return {
    trust: v.trust as string,
    stateDir,
    git: v.git_url ? { url: v.git_url as string, branch: v.git_branch as string, file: v.git_file as string } : null,
    capsuleDir: (v.capsule_dir as string | undefined) ?? null,
    pollMinMs: pollMin,
    pollMaxMs: pollMax,
    backoffMaxMs: Math.max(v.backoff_max_ms as number, pollMax),
    timeoutMs: v.timeout_ms as number,
    maxCapsuleBytes: v.max_capsule_bytes as number,
    engine: v.engine as EngineName,
    kernel: (v.kernel as boolean | undefined) ?? true,
    dataplane: (v.dataplane as boolean | undefined) ?? true,
    adminSocket: v.admin_socket as string,
    adminListen: (v.admin_listen as string | undefined) ?? null,
    audit: (v.audit as string | undefined) ?? join(stateDir, 'audit.jsonl'),
    resetState: (v.reset_state as boolean | undefined) ?? false,
    workloadMetadataDir: v.workload_metadata_dir as string,
  };
}
