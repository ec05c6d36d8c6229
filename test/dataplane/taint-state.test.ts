// Taint survives a dataplane restart when it has a state file: an agent that
// read a private key is still denied egress by the next dataplane; a corrupt
// state file stops the start instead of starting every agent clean.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startHarness, loopback } from './helpers.js';
import { startHttpUpstream, type HttpUpstream } from './upstreams.js';
import { TaintSessions } from '../../enforcer/dataplane/taint/sessions.js';
import { persistTaint, readTaintFile, TaintStateError } from '../../enforcer/dataplane/taint/store.js';

const run = promisify(execFile);
const CODER_ID = 'spiffe://corp.example/agents/coder';
let up: HttpUpstream;
let dir: string;

before(async () => {
  up = await startHttpUpstream();
  dir = await mkdtemp(join(tmpdir(), 'lilith-taint-state-'));
});
after(async () => {
  await up.close();
  await rm(dir, { recursive: true, force: true });
});

const status = async (port: number, ...args: string[]) =>
  (await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', ...args, `http://localhost:${port}/api/echo`]))
    .stdout;

/** One dataplane life: optionally download the key, then try an egress POST; returns the POST's status and its audit event's taint_before. */
async function life(taintState: string | undefined, download: boolean): Promise<{ post: string; taintBefore: string | undefined }> {
  const h = await startHarness({ destination: loopback(up.port), extra: taintState ? { taintState } : {} });
  try {
    if (download) await run('curl', ['-sS', '--max-time', '20', `http://localhost:${h.proxy.port}/secret`]);
    const post = await status(h.proxy.port, '-X', 'POST', '-d', 'payload');
    const ev = (await h.events()).filter((e) => e.action === 'Action::"POST"').at(-1);
    return { post, taintBefore: ev?.taint_before };
  } finally {
    await h.close();
  }
}

test('taint saved in the state file survives a dataplane restart: egress stays denied', async () => {
  const path = join(dir, 'restart', 'taint.json');
  const first = await life(path, true);
  assert.equal(first.post, '403', 'tainted by the private key: egress denied');
  assert.equal(first.taintBefore, '0x0000000000000008');
  const saved = await readTaintFile(path);
  assert.deepEqual(saved.find((a) => a.spiffeId === CODER_ID)?.mask, 0x8n, 'CREDENTIALS on disk');
  const second = await life(path, false);
  assert.equal(second.post, '403', 'a new dataplane on the same state: still denied');
  assert.equal(second.taintBefore, '0x0000000000000008');
  // Control: without the state file a restart starts clean, which is what the file prevents.
  const clean = await life(undefined, false);
  assert.equal(clean.post, '200');
});

test('a corrupt or unreadable taint state stops the start with the path and the reason; the file is left as it was', async () => {
  for (const [name, text, why] of [
    ['notjson', '{"version": 1, "agents": [', /not JSON/],
    ['shape', '{"version": 2, "agents": []}', /expected \{"version": 1/],
    ['mask', '{"version": 1, "agents": [{"spiffe_id": "spiffe://x/a", "mask": "0xZZ", "mcp": []}]}', /agents\[0\]: not a 64-bit hex mask/],
  ] as const) {
    const path = join(dir, `${name}.json`);
    await writeFile(path, text);
    await assert.rejects(
      startHarness({ destination: loopback(up.port), extra: { taintState: path } }),
      (err: Error) =>
        err instanceof TaintStateError &&
        err.message.includes(path) &&
        why.test(err.message) &&
        /refusing to start every agent clean/.test(err.message),
    );
    assert.equal(await readFile(path, 'utf8'), text);
  }
});

test('the store saves agent and MCP session masks when they grow, restores them, and OR-s into what is there', async () => {
  const path = join(dir, 'unit', 'taint.json');
  const a = new TaintSessions();
  const store = await persistTaint(a, path);
  a.openMcp('spiffe://x/a', 'empty'); // no bits: not worth a write, and not saved
  a.or('spiffe://x/a', 0x1n, 's1');
  a.or('spiffe://x/b', 0x8000000000000000n);
  await store.flush();
  assert.equal(store.lastError(), null);
  const b = new TaintSessions();
  b.or('spiffe://x/a', 0x2n);
  const again = await persistTaint(b, path);
  assert.equal(b.mask('spiffe://x/a'), 0x3n, 'restored bits OR-ed into existing ones');
  assert.equal(b.mcpMask('spiffe://x/a', 's1'), 0x1n);
  assert.equal(b.mask('spiffe://x/b'), 0x8000000000000000n, 'bit 63 round-trips');
  await again.close();
  const text = JSON.parse(await readFile(path, 'utf8')) as { agents: Array<{ mcp: Array<{ id: string }> }> };
  assert.ok(!JSON.stringify(text).includes('"empty"'), 'empty MCP sessions are not saved');
  assert.deepEqual(await readTaintFile(join(dir, 'absent.json')), [], 'no file: nothing to restore');
});
