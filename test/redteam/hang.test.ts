// A red-team attempt that hangs is a failure that says where it hung, and
// leaves nothing running behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { AttemptHung, runBounded } from '../../redteam/hang.js';
import { failureDetail } from '../../redteam/attempts.js';

test('a command past its deadline fails as HUNG with the syscall each of its processes sat in, and its tree is killed', async () => {
  // The shell ignores SIGTERM, as a process stuck in the kernel would: only the SIGKILL pass ends it.
  const script = "trap '' TERM; sleep 300 & echo $! ; wait";
  const err = await runBounded('/bin/sh', ['-c', script], 1500).then(
    () => assert.fail('a command past its deadline resolved'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof AttemptHung, String(err));
  assert.equal(err.code, 'ATTEMPT_HUNG');
  assert.match(err.message, /^HUNG: sh -c .* gave no answer within 1\.5 s/);
  assert.match(err.message, /\[sleep 300\] S \(sleeping\), syscall (230|35)/, 'the sleeping child and its syscall are named');
  assert.match(err.message, /\[\/bin\/sh -c [^\]]*\] S \(sleeping\), syscall \d+, wchan \S+/, 'the shell waiting for it');
  if (process.getuid?.() === 0) assert.match(err.message, /kernel stack \S*nanosleep/, 'root reads the kernel stacks');
  assert.equal(failureDetail(err), err.message, 'reported as a hang, not as a crash');
  const sleeper = Number(/stdout "(\d+)"/.exec(err.message)?.[1]);
  assert.ok(sleeper > 0, err.message);
  await delay(2500);
  assert.equal(existsSync(`/proc/${sleeper}`), false, 'the orphaned child was killed too');
});

test('a command that answers in time resolves with its output and exit code', async () => {
  assert.deepEqual(await runBounded('/bin/sh', ['-c', 'echo out; echo err >&2; exit 3'], 10_000), {
    code: 3,
    stdout: 'out',
    stderr: 'err',
  });
});
