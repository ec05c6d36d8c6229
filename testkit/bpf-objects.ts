// Test-only BPF objects live in testkit/bpf (the product build never compiles them).
// Tests build what they need on demand; make is a no-op when the objects are current.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../bpf/addon.js';

export function testObjectPath(name: string): string {
  return join(repoRoot(), 'testkit', 'bpf', 'build', `${name}.bpf.o`);
}

/**
 * `make` for the named test objects. Another build running make at the same time can
 * make ours fail spuriously; objects that exist are then used as they are.
 */
export function buildTestObjects(names: string[]): void {
  try {
    execFileSync('make', ['-s', '-C', join(repoRoot(), 'testkit', 'bpf'), ...names.map((n) => `build/${n}.bpf.o`)], { stdio: 'inherit' });
  } catch (err) {
    if (!names.every((n) => existsSync(testObjectPath(n)))) throw err;
    process.emitWarning(`make for ${names.join(', ')} failed; using the existing objects`);
  }
}
