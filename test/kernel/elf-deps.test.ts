// The exec allowlist's library closure, read from ELF headers, against what the
// real loader resolves (ldd) for the binaries the bundled lilith.json allowlists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { executableClosure, readElfDeps } from '../../enforcer/kernel/elf-deps.js';

/** What ld.so itself maps for `bin` (ldd), as real paths; the vDSO is not a file. */
function lddFiles(bin: string): string[] {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  const files = new Set<string>([realpathSync(bin)]);
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) files.add(realpathSync(m[1]));
  }
  return [...files].sort();
}

test('the closure of each bundled allowlisted program is exactly what the loader maps (ldd)', () => {
  const config = JSON.parse(readFileSync('policies/lilith.json', 'utf8')) as { kernel: { exec_allowlist: string[] } };
  for (const bin of config.kernel.exec_allowlist) {
    const { files, missing } = executableClosure(bin);
    assert.deepEqual(missing, [], bin);
    assert.deepEqual(files.sort(), lddFiles(bin), bin);
  }
});

test('scripts, static programs and malformed ELF files: no dependencies, no hang, no crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-elf-'));
  try {
    writeFileSync(join(dir, 'script'), '#!/bin/sh\necho hi\n');
    assert.equal(readElfDeps(join(dir, 'script')), null);
    const real = readFileSync(realpathSync('/usr/bin/git'));
    writeFileSync(join(dir, 'truncated'), real.subarray(0, 100));
    assert.throws(() => readElfDeps(join(dir, 'truncated')), /truncated|out of range|malformed/);
    const huge = Buffer.from(real.subarray(0, 64));
    huge.writeBigUInt64LE(0xffffffffffffn, 32); // program headers far beyond the file
    writeFileSync(join(dir, 'huge-phoff'), huge);
    assert.throws(() => readElfDeps(join(dir, 'huge-phoff')));
    // The closure of a file it cannot read is the file itself: the allowlist entry still counts.
    assert.deepEqual(executableClosure(join(dir, 'truncated')).files, [realpathSync(join(dir, 'truncated'))]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
