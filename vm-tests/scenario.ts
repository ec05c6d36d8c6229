// Contract between the VM runner and the guest-side scenarios.
// A scenario is a module vm-tests/scenarios/<name>.ts whose exports satisfy `Scenario`.
// The runner imports it on the host only to read `description` and `bootLsm`, so a
// scenario module must have no side effects at import time.

/**
 * Which LSM list the kernel is booted with: `bpf` = `lsm=landlock,bpf`, `no-bpf` =
 * `lsm=landlock`, `bpf-only` = `lsm=bpf` (BPF-LSM without Landlock, like kernels built
 * without it: every Layer 3 guarantee that needs Landlock must refuse or warn).
 */
export type BootLsm = 'bpf' | 'no-bpf' | 'bpf-only';

/** The kernel's lsm= value for each BootLsm. */
export const LSM_LIST: Readonly<Record<BootLsm, string>> = { bpf: 'landlock,bpf', 'no-bpf': 'landlock', 'bpf-only': 'bpf' };

export function isBootLsm(v: unknown): v is BootLsm {
  return typeof v === 'string' && Object.hasOwn(LSM_LIST, v);
}

export interface Check {
  /** Behaviour under test, e.g. `connect from managed process gets EPERM`. */
  readonly name: string;
  readonly ok: boolean;
  /** What was observed; always filled so a report is readable without the log. */
  readonly detail: string;
}

export interface ScenarioResult {
  readonly checks: Check[];
}

export interface ScenarioContext {
  /** Absolute path of the project checkout as seen in the guest (same path as on the host). */
  readonly projectRoot: string;
  /** `uname -r` of the guest kernel. */
  readonly kernelRelease: string;
  /** LSM list the runner asked the kernel to boot with. */
  readonly bootLsm: BootLsm;
  /** A fresh writable directory (guest tmpfs) private to this scenario. */
  readonly workDir: string;
  /** Writable directory shared with the host; files written here are kept with the report. */
  readonly resultsDir: string;
  /** Appends a line to the scenario log (kept with the report, printed on failure). */
  log(message: string): void;
}

export interface Scenario {
  readonly description: string;
  /** Default `bpf`. The runner boots one VM per (kernel, bootLsm) group. */
  readonly bootLsm?: BootLsm;
  /** Seconds this scenario needs at least (a real enforcer under TCG starts slowly); the runner's --timeout applies when larger. */
  readonly timeoutS?: number;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}

/** What the guest writes per scenario to the results share (`<name>.json`). */
export interface ScenarioReport {
  readonly scenario: string;
  readonly kernelRelease: string;
  readonly bootLsm: BootLsm;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly checks: Check[];
  /** Set when run() threw or timed out; the scenario then counts as failed. */
  readonly error?: string;
}

/** Collects checks in order; `expect` records one and returns its outcome for early exits. */
export class Checks {
  readonly list: Check[] = [];

  expect(name: string, ok: boolean, detail: string): boolean {
    this.list.push({ name, ok, detail });
    return ok;
  }

  /** Runs `fn`; a throw becomes a failed check carrying the error message. */
  async attempt(name: string, fn: () => Promise<string> | string): Promise<boolean> {
    try {
      return this.expect(name, true, await fn());
    } catch (err) {
      return this.expect(name, false, err instanceof Error ? err.message : String(err));
    }
  }

  result(): ScenarioResult {
    return { checks: this.list };
  }
}
