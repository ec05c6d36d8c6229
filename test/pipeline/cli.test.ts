// The capsule CLI end to end, as a user runs it: real processes, exit codes,
// files on disk, a real git HTTP server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startGitServer, type GitServer } from '../../pipeline/git-http-server.js';
import { CLI, copyPolicies, lineColOf, POLICIES_DIR, REPO_ROOT, type PolicyCopy } from './policy-copy.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function lilith(args: string[], cwd = REPO_ROOT): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'lilith-cli-test-'));
});
after(() => rm(work, { recursive: true, force: true }));

describe('lilith validate', () => {
  let copy: PolicyCopy;
  before(async () => {
    copy = await copyPolicies();
  });
  after(() => copy.remove());

  test('exit 0 on the bundled policies', async () => {
    const r = await lilith(['validate', POLICIES_DIR]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /ok/);
  });

  test('exit 1 with file:line:col, and GitHub annotations with --format github', async () => {
    await copy.edit(
      'egress.cedar',
      (t) => t + '\n@id("typo")\nforbid (principal, action, resource) when { context.taint.contians("PII") };\n',
    );
    const text = await copy.read('egress.cedar');
    const at = lineColOf(text, 'context.taint.contians');
    const r = await lilith(['validate', copy.dir], work);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const line = r.stdout
      .trim()
      .split('\n')
      .find((l) => l.includes('egress.cedar'));
    assert.ok(line, r.stdout);
    assert.match(line, new RegExp(`egress\\.cedar:${at.line}:\\d+: .*contians`));
    const gh = await lilith(['validate', copy.dir, '--format', 'github'], work);
    assert.equal(gh.code, 1);
    assert.match(gh.stdout, new RegExp(`^::error file=[^,]*egress.cedar,line=${at.line},col=\\d+::.*contians`, 'm'));
  });

  test('exit 2 on usage and I/O errors', async () => {
    assert.equal((await lilith(['validate', join(work, 'does-not-exist')])).code, 2);
    assert.equal((await lilith(['validate', '--format', 'xml'])).code, 2);
    assert.equal((await lilith(['validate', 'a', 'b'])).code, 2);
  });
});

describe('keygen, sign, verify, publish', () => {
  let server: GitServer;
  let keys: string;
  before(async () => {
    server = await startGitServer();
    keys = join(work, 'keys');
  });
  after(() => server.dispose());

  test('keygen writes a 0600 secret key, a public key and a one-key trust file; never overwrites a key', async () => {
    const r = await lilith(['keygen', '--out', keys]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(join(keys, 'lilith.key'))).mode & 0o777, 0o600);
    const pub = JSON.parse(await readFile(join(keys, 'lilith.pub'), 'utf8'));
    const trust = JSON.parse(await readFile(join(keys, 'trust.json'), 'utf8'));
    assert.deepEqual(trust, { version: 1, threshold: 1, keys: [pub] });
    assert.match(r.stdout, new RegExp(pub.keyid));
    const before = await readFile(join(keys, 'lilith.key'));
    assert.equal((await lilith(['keygen', '--out', keys])).code, 2);
    assert.deepEqual(await readFile(join(keys, 'lilith.key')), before);
    assert.equal((await lilith(['keygen'])).code, 2);
  });

  test('sign → verify --state → publish over HTTP → sign --watermark auto → publish', async () => {
    await server.createBareRepo('p.git');
    const url = server.repoUrl('p.git');
    const c1 = join(work, 'c1.json');
    const proof = join(work, 'proof.json');
    await writeFile(proof, '{"result":"proved"}\n');
    const s = await lilith([
      'sign',
      POLICIES_DIR,
      '--key',
      join(keys, 'lilith.key'),
      '--watermark',
      'auto',
      '--repo',
      url,
      '--out',
      c1,
      '--proof',
      proof,
      '--source-commit',
      'deadbeef',
    ]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /watermark 1,/);

    const state = join(work, 'state');
    const v = await lilith(['verify', c1, '--trust', join(keys, 'trust.json'), '--state', state]);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /valid: .*watermark 1/);
    assert.match(v.stdout, /proof report sha256 [0-9a-f]{64}/);
    assert.match(v.stdout, /source commit deadbeef/);
    const recorded = JSON.parse(await readFile(join(state, 'state.json'), 'utf8'));
    assert.equal(recorded.watermark, 1);

    const p = await lilith(['publish', c1, '--repo', url, '--trust', join(keys, 'trust.json')]);
    assert.equal(p.code, 0, p.stderr);
    const c2 = join(work, 'c2.json');
    assert.equal(
      (await lilith(['sign', POLICIES_DIR, '--key', join(keys, 'lilith.key'), '--watermark', 'auto', '--repo', url, '--out', c2])).code,
      0,
    );
    assert.equal(JSON.parse(Buffer.from(JSON.parse(await readFile(c2, 'utf8')).payload, 'base64').toString()).watermark, 2);
    assert.equal((await lilith(['publish', c2, '--repo', url])).code, 0);
    // Re-publishing the older capsule is refused with exit 1.
    const old = await lilith(['publish', c1, '--repo', url]);
    assert.equal(old.code, 1);
    assert.match(old.stderr, /not above the published watermark 2/);
  });

  test('verify refusals exit 1 naming the code, and leave the state file byte-identical', async () => {
    const state = join(work, 'state');
    const stateBefore = await readFile(join(state, 'state.json'));
    const c1 = join(work, 'c1.json');
    const trustFile = join(keys, 'trust.json');

    const tampered = join(work, 'tampered.json');
    const env = JSON.parse(await readFile(c1, 'utf8'));
    const body = JSON.parse(Buffer.from(env.payload, 'base64').toString());
    body.watermark = 99;
    env.payload = Buffer.from(JSON.stringify(body)).toString('base64');
    await writeFile(tampered, JSON.stringify(env));
    const cases: [string, string[], RegExp][] = [
      ['bad_signature', [tampered], /refused \(bad_signature\)/],
      ['expired', [c1, '--at', '2099-01-01T00:00:00Z'], /refused \(expired\)/],
    ];
    const truncated = join(work, 'truncated.json');
    await writeFile(truncated, (await readFile(c1)).subarray(0, 100));
    cases.push(['malformed', [truncated], /refused \(malformed\)/]);
    const big = join(work, 'big.json');
    await writeFile(big, Buffer.alloc(16 * 1024 * 1024 + 10, 0x20));
    cases.push(['too_large', [big], /refused \(too_large\)/]);
    for (const [name, args, pattern] of cases) {
      const r = await lilith(['verify', ...args, '--trust', trustFile, '--state', state]);
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.deepEqual(await readFile(join(state, 'state.json')), stateBefore, `${name}: state unchanged`);
    }

    // A lower watermark than the recorded one (state says 2 after accepting c2).
    assert.equal((await lilith(['verify', join(work, 'c2.json'), '--trust', trustFile, '--state', state])).code, 0);
    const after2 = await readFile(join(state, 'state.json'));
    const rb = await lilith(['verify', c1, '--trust', trustFile, '--state', state]);
    assert.equal(rb.code, 1);
    assert.match(rb.stderr, /refused \(rollback\)/);
    assert.deepEqual(await readFile(join(state, 'state.json')), after2);

    // Unknown key: a second key's trust file.
    const other = join(work, 'other-keys');
    assert.equal((await lilith(['keygen', '--out', other])).code, 0);
    const uk = await lilith(['verify', c1, '--trust', join(other, 'trust.json')]);
    assert.equal(uk.code, 1);
    assert.match(uk.stderr, /refused \(unknown_key\)/);

    // Corrupt state: exit 2, file left alone.
    await writeFile(join(state, 'state.json'), '{"watermark": 2');
    const corrupt = await lilith(['verify', c1, '--trust', trustFile, '--state', state]);
    assert.equal(corrupt.code, 2);
    assert.match(corrupt.stderr, /state_corrupt/);
    assert.equal(await readFile(join(state, 'state.json'), 'utf8'), '{"watermark": 2');
  });

  test('threshold signing with two --key flags against a 2-of-2 trust file', async () => {
    const k2 = join(work, 'k2');
    assert.equal((await lilith(['keygen', '--out', k2, '--name', 'second'])).code, 0);
    const pubs = [JSON.parse(await readFile(join(keys, 'lilith.pub'), 'utf8')), JSON.parse(await readFile(join(k2, 'second.pub'), 'utf8'))];
    const trust2 = join(work, 'trust2.json');
    await writeFile(trust2, JSON.stringify({ version: 1, threshold: 2, keys: pubs }));
    const both = join(work, 'both.json');
    assert.equal(
      (
        await lilith([
          'sign',
          POLICIES_DIR,
          '--key',
          join(keys, 'lilith.key'),
          '--key',
          join(k2, 'second.key'),
          '--watermark',
          '7',
          '--out',
          both,
        ])
      ).code,
      0,
    );
    const ok = await lilith(['verify', both, '--trust', trust2]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /signed by 2 of threshold 2/);
    const one = join(work, 'one.json');
    assert.equal((await lilith(['sign', POLICIES_DIR, '--key', join(keys, 'lilith.key'), '--watermark', '7', '--out', one])).code, 0);
    const below = await lilith(['verify', one, '--trust', trust2]);
    assert.equal(below.code, 1);
    assert.match(below.stderr, /refused \(below_threshold\)/);
  });

  test('sign refuses an invalid policy directory (exit 1) and bad usage (exit 2)', async () => {
    const copy = await copyPolicies();
    try {
      await copy.edit('mcp.cedar', (t) => t + '\n@id("x") permit (principal, action, resource) when { nope };\n');
      const out = join(work, 'never.json');
      const r = await lilith(['sign', copy.dir, '--key', join(keys, 'lilith.key'), '--watermark', '1', '--out', out]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /mcp.cedar:\d+:\d+: /);
      await assert.rejects(stat(out));
    } finally {
      await copy.remove();
    }
    assert.equal(
      (await lilith(['sign', POLICIES_DIR, '--key', join(keys, 'lilith.key'), '--watermark', 'auto', '--out', join(work, 'x.json')])).code,
      2,
    );
    assert.equal(
      (
        await lilith([
          'sign',
          POLICIES_DIR,
          '--key',
          join(keys, 'lilith.key'),
          '--watermark',
          '1',
          '--out',
          join(work, 'x.json'),
          '--expires',
          'soon',
        ])
      ).code,
      2,
    );
    assert.equal((await lilith(['verify', join(work, 'c1.json')])).code, 2);
  });
});

// The demo itself (kernel, fleet, agent) runs in test/demo/demo.test.ts.
test('lilith demo --help names its steps and options', async () => {
  const r = await lilith(['demo', '--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const word of ['proof gate', 'git smart-HTTP', 'lilith run', 'hot swap', '--keep-running', '--work', '--no-kernel'])
    assert.ok(r.stdout.includes(word), `demo --help mentions ${word}`);
  assert.equal((await lilith(['demo', '--bogus'])).code, 2);
});

test('key rotation from the CLI: accepted with old and new keys, refused with the new keys alone', async () => {
  const dir = join(work, 'rotation');
  assert.equal((await lilith(['keygen', '--out', join(dir, 'old')])).code, 0);
  assert.equal((await lilith(['keygen', '--out', join(dir, 'new')])).code, 0);
  const newTrust = join(dir, 'new', 'trust.json');
  const update = join(dir, 'update.json');
  assert.equal(
    (
      await lilith([
        'sign',
        '--trust-update',
        newTrust,
        '--key',
        join(dir, 'old', 'lilith.key'),
        '--key',
        join(dir, 'new', 'lilith.key'),
        '--out',
        update,
      ])
    ).code,
    0,
  );
  const written = join(dir, 'accepted-trust.json');
  const ok = await lilith(['verify', update, '--trust', join(dir, 'old', 'trust.json'), '--write-trust', written]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(JSON.parse(await readFile(written, 'utf8')), JSON.parse(await readFile(newTrust, 'utf8')));

  const selfSigned = join(dir, 'self.json');
  assert.equal((await lilith(['sign', '--trust-update', newTrust, '--key', join(dir, 'new', 'lilith.key'), '--out', selfSigned])).code, 0);
  const refused = await lilith(['verify', selfSigned, '--trust', join(dir, 'old', 'trust.json')]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refused \(unknown_key\): trust update \(current keys\)/);
});
