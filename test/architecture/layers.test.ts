// The import graph keeps the house's layering: top-level folders import only folders
// on lower floors, the enforcer's rooms import only rooms below them, no folder is
// in an import cycle, and product code never imports test code. Read from the
// TypeScript sources (relative imports, static and dynamic), so it holds before any build.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Floors, ground first. A folder may import folders on strictly lower floors only. */
const FLOORS: Record<string, number> = {
  cedar: 0,
  identity: 0,
  bpf: 0,
  net: 0,
  capsule: 1,
  confine: 2,
  pipeline: 3,
  enforcer: 3,
  cli: 4,
  redteam: 5,
  testkit: 5,
  bench: 6,
  'vm-tests': 6,
  test: 7,
};
const PRODUCT = ['cedar', 'identity', 'bpf', 'net', 'capsule', 'confine', 'pipeline', 'enforcer', 'cli'];
/** The enforcer's rooms: the daemon wires the others; the audit contract is shared by all. */
const ROOMS: Record<string, number> = { audit: 0, client: 0, control: 1, dataplane: 2, kernel: 2, daemon: 3 };

interface Edge {
  from: string;
  to: string;
}

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name === 'build' || name === 'fixtures') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"]+)\1/g;

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const top of Object.keys(FLOORS)) {
    for (const file of sources(join(ROOT, top))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(SPECIFIER)) {
        const target = normalize(join(dirname(file), m[2].replace(/\.js$/, '.ts')));
        out.push({ from: relative(ROOT, file), to: relative(ROOT, target) });
      }
    }
  }
  return out;
}

const topOf = (p: string): string => p.split(sep)[0];
const roomOf = (p: string): string | null => (p.startsWith(`enforcer${sep}`) && p.split(sep).length > 2 ? p.split(sep)[1] : null);

/** Folder-level cycles at every depth: two sibling folders that import each other, directly or around a loop. */
function folderCycles(all: Edge[]): string[] {
  const graph = new Map<string, Set<string>>();
  for (const { from, to } of all) {
    const a = from.split(sep).slice(0, -1);
    const b = to.split(sep).slice(0, -1);
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    if (i >= a.length || i >= b.length) continue; // one folder contains the other: same room
    const fa = a.slice(0, i + 1).join('/');
    const fb = b.slice(0, i + 1).join('/');
    if (!graph.has(fa)) graph.set(fa, new Set());
    graph.get(fa)?.add(fb);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 'open') cycles.push([...stack.slice(stack.indexOf(m)), m].join(' → '));
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  return cycles;
}

const all = edges();

test('the import graph is read: there are edges from every floor that has code', () => {
  for (const top of ['capsule', 'pipeline', 'enforcer', 'cli', 'test']) {
    assert.ok(
      all.some((e) => topOf(e.from) === top),
      `no imports read from ${top}/`,
    );
  }
});

test('top-level folders import only folders on lower floors (no upward or sideways edges)', () => {
  const bad = all
    .filter((e) => topOf(e.to) in FLOORS && topOf(e.from) !== topOf(e.to))
    .filter((e) => FLOORS[topOf(e.from)] <= FLOORS[topOf(e.to)])
    .map((e) => `${e.from} imports ${e.to}`);
  assert.deepEqual(bad, []);
});

test('no product file imports test code (test/, testkit/, bench/, vm-tests/, redteam/)', () => {
  const bad = all.filter((e) => PRODUCT.includes(topOf(e.from)) && !PRODUCT.includes(topOf(e.to))).map((e) => `${e.from} imports ${e.to}`);
  assert.deepEqual(bad, []);
});

test("the enforcer's rooms import only rooms below them", () => {
  const bad = all
    .filter((e) => topOf(e.from) === 'enforcer' && topOf(e.to) === 'enforcer')
    .filter((e) => {
      const a = roomOf(e.from);
      const b = roomOf(e.to);
      return a !== b && (a === null || b === null || !(a in ROOMS) || !(b in ROOMS) || ROOMS[a] <= ROOMS[b]);
    })
    .map((e) => `${e.from} imports ${e.to}`);
  assert.deepEqual(bad, []);
});

test('outside callers enter an enforcer room only through its front door (index.ts)', () => {
  const bad = all
    .filter((e) => topOf(e.from) !== 'test' && roomOf(e.to) !== null && roomOf(e.to) !== 'audit')
    .filter((e) => roomOf(e.from) !== roomOf(e.to) && !e.to.endsWith(`${sep}index.ts`))
    .map((e) => `${e.from} imports ${e.to}`);
  assert.deepEqual(bad, []);
});

test('no folder, at any depth, is part of an import cycle', () => {
  assert.deepEqual(folderCycles(all), []);
});

test('the layering check itself catches an upward edge and a folder cycle', () => {
  const upward: Edge = { from: join('capsule', 'x.ts'), to: join('enforcer', 'daemon', 'y.ts') };
  assert.ok(FLOORS[topOf(upward.from)] <= FLOORS[topOf(upward.to)]);
  const loop: Edge[] = [
    { from: join('a', 'p', 'f.ts'), to: join('a', 'q', 'g.ts') },
    { from: join('a', 'q', 'g.ts'), to: join('a', 'p', 'f.ts') },
  ];
  assert.deepEqual(folderCycles(loop), ['a/p → a/q → a/p']);
});
