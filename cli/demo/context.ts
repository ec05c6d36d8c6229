// State shared by the demo's steps, and the outcome record it leaves in the work
// directory (outcome.json) next to the real artefacts: proof reports, capsules,
// the enforcers' audit logs and status snapshots, the policy repository.
import type { Cleanup } from './cleanup.js';
import type { Capabilities } from './preflight.js';
import type { ExfilListener, McpFilesServer } from './servers.js';

export interface GateOutcome {
  pr: number;
  branch: string;
  title: string;
  /** `lilith prove` exit code: 0 proven, 1 escalation/violation, 2 error. */
  exit: number;
  /** The JSON report `lilith prove --out` wrote. */
  report: string;
  merged: boolean;
}

export interface ReleaseOutcome {
  watermark: number;
  digest: string;
  capsule: string;
  source_commit: string;
  sign_exit: number;
  publish_exit: number;
}

export interface EnforcerOutcome {
  name: string;
  socket: string;
  audit: string;
  kernel: boolean;
  dataplane: boolean;
  metrics: string;
}

export interface Outcome {
  skipped: Array<{ what: string; why: string }>;
  gate: GateOutcome[];
  releases: ReleaseOutcome[];
  fleet: EnforcerOutcome[];
  agent: { exit: number | null; spiffe_id: string; lines: Array<Record<string, unknown>> } | null;
  swap: { watermark: number; published_at: string } | null;
  exfil_received: { http: number; udp: number } | null;
  seconds: number;
}

export interface DemoContext {
  policiesDir: string;
  work: string;
  /** Names this run's cgroup subtree and pin directory. */
  tag: string;
  can: Capabilities;
  cleanup: Cleanup;
  outcome: Outcome;
  files: McpFilesServer;
  exfil: ExfilListener;
  ports: { proxy: number; dns: number; admin: [number, number, number] };
  /** The policy repository (a work tree; policies under policies/). */
  repo: string;
  cgroupRoot: string;
  pinRoot: string;
  keys: { key: string; trust: string };
  /** The git smart-HTTP URL the capsules branch is published to. */
  gitUrl: string;
}

export function emptyOutcome(): Outcome {
  return { skipped: [], gate: [], releases: [], fleet: [], agent: null, swap: null, exfil_received: null, seconds: 0 };
}
