// VM scenario: the loader suite on a kernel booted without bpf in the LSM list:
// LSM programs load and attach but never run, and the probe must say so.
import type { ScenarioContext, ScenarioResult } from '../../../vm-tests/scenario.js';
import { runSuite } from '../vm-suite.js';

export const description = 'the libbpf addon/loader test suite with bpf absent from the LSM list';
export const bootLsm = 'no-bpf';

export function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  return runSuite(ctx, 'no-bpf');
}
