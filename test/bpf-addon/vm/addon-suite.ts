// VM scenario: the loader suite on a kernel booted with lsm=landlock,bpf (LSM tests run).
import type { ScenarioContext, ScenarioResult } from '../../../vm-tests/scenario.js';
import { runSuite } from '../vm-suite.js';

export const description = 'the libbpf addon/loader test suite (test/bpf-addon), BPF-LSM tests included';
export const bootLsm = 'bpf';

export function run(ctx: ScenarioContext): Promise<ScenarioResult> {
  return runSuite(ctx, 'bpf');
}
