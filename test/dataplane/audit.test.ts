import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FileAuditSink } from '../../enforcer/daemon/audit-sink.js';
import type { DecisionAuditEvent } from '../../enforcer/audit/event.js';

const run = promisify(execFile);

const event = (i: number, decision: 'allow' | 'deny' = 'allow'): DecisionAuditEvent => ({
  kind: 'decision',
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  spiffe_id: 'spiffe://corp.example/agents/coder',
  pid: 42,
  destination: '10.0.1.50:8080',
  protocol: 'mcp',
  action: i % 3 === 0 ? 'Action::"http_post"' : 'Action::"read_file"',
  resource: 'MCPServer::"files"',
  decision,
  policies: decision === 'deny' ? ['taint-blocks-egress'] : ['read-file-clean'],
  errors: [],
  taint_before: '0x0000000000000001',
  taint_after: '0x0000000000000003',
  watermark: 7,
  latency_us: 55.5,
});

test('the sink rotates by size and keeps the configured number of files, losing nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-audit-'));
  try {
    const path = join(dir, 'audit.jsonl');
    const sink = new FileAuditSink(path, { maxBytes: 4096, keep: 3 });
    for (let i = 0; i < 60; i++) sink.emit(event(i));
    await sink.close();
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2', 'audit.jsonl.3']);
    let lines = 0;
    for (const f of files) {
      const text = await readFile(join(dir, f), 'utf8');
      assert.ok(Buffer.byteLength(text) <= 4096, `${f} within the size bound`);
      for (const l of text.split('\n').filter(Boolean)) {
        JSON.parse(l);
        lines++;
      }
    }
    assert.ok(lines < 60, 'the oldest rotated file was removed');
    assert.equal(sink.dropped(), 0);
    assert.equal(sink.written(), 60);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a full queue drops and counts instead of blocking; an unwritable path counts drops and never throws', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-audit-'));
  try {
    const sink = new FileAuditSink(join(dir, 'a.jsonl'), { queueLimit: 10 });
    for (let i = 0; i < 100; i++) sink.emit(event(i)); // synchronous burst: the writer has not run yet
    assert.ok(sink.dropped() >= 80, `dropped ${sink.dropped()}`);
    await sink.close();
    const bad = new FileAuditSink(join(dir, 'a.jsonl', 'not-a-dir', 'audit.jsonl')); // parent is a file
    bad.emit(event(1));
    await bad.flush();
    assert.equal(bad.dropped(), 1);
    assert.match(bad.lastError() ?? '', /ENOTDIR|EEXIST/);
    await bad.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('events are serialized by the writer: one that cannot be is dropped and counted, its neighbours are written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-audit-'));
  try {
    const path = join(dir, 'a.jsonl');
    const sink = new FileAuditSink(path);
    sink.emit(event(1));
    sink.emit({ ...event(2), latency_us: 1n as unknown as number }); // BigInt: JSON.stringify throws
    sink.emit(event(3, 'deny'));
    await sink.close();
    const lines = (await readFile(path, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as DecisionAuditEvent);
    assert.deepEqual(
      lines.map((e) => e.time),
      [event(1).time, event(3).time],
    );
    assert.equal(lines[1].decision, 'deny');
    assert.equal(sink.dropped(), 1);
    assert.equal(sink.written(), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('lilith audit prints readably, filters, and follows new events', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lilith-audit-'));
  try {
    const path = join(dir, 'audit.jsonl');
    await appendFile(path, [event(1), event(2, 'deny'), event(3, 'deny')].map((e) => JSON.stringify(e) + '\n').join(''));
    const all = await run(process.execPath, ['dist/cli/main.js', 'audit', '--file', path]);
    assert.equal(all.stdout.trim().split('\n').length, 3);
    assert.match(
      all.stdout,
      /ALLOW mcp +spiffe:\/\/corp\.example\/agents\/coder \(pid 42\)  Action::"read_file" → MCPServer::"files"  dst 10\.0\.1\.50:8080  \[read-file-clean\]  taint 0x1→0x3  w7  55\.5µs/,
    );
    const denies = await run(process.execPath, [
      'dist/cli/main.js',
      'audit',
      '--file',
      path,
      '--filter',
      'decision=deny',
      '--filter',
      'action=Action::"http*',
      '--json',
    ]);
    const lines = denies.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as DecisionAuditEvent);
    assert.deepEqual(
      lines.map((e) => e.time),
      [event(3).time],
    );
    const bad = await run(process.execPath, ['dist/cli/main.js', 'audit', '--file', path, '--filter', 'nonsense']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal((bad as { code: number }).code, 2);

    const child = spawn(process.execPath, ['dist/cli/main.js', 'audit', '--file', path, '--follow', '--filter', 'decision=deny']);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const waitFor = async (n: number) => {
      for (let i = 0; i < 400 && out.trim().split('\n').filter(Boolean).length < n; i++) await new Promise((r) => setTimeout(r, 25));
    };
    await waitFor(2);
    await appendFile(path, JSON.stringify(event(9, 'deny')) + '\n' + JSON.stringify(event(10)) + '\n');
    await waitFor(3);
    child.kill();
    const seen = out.trim().split('\n');
    assert.equal(seen.length, 3);
    assert.match(seen[2], /00:00:09/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
