// .github/workflows/vm-tests.yml cannot run here; this keeps it honest: it parses, covers the
// kernel matrix, and every command it calls exists (npm scripts, repo files, runner flags).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse } from 'yaml';

const root = resolve(import.meta.dirname, '..', '..', '..');
const KERNELS = ['5.15', '6.1', '6.6', '6.12', '6.18', 'bpf-next'];

interface Step {
  name?: string;
  run?: string;
  uses?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  if?: string;
  'runs-on': string;
  container?: unknown;
  strategy?: { matrix?: { kernel?: string[] } };
  steps: Step[];
  'timeout-minutes'?: number;
}
const wf = parse(readFileSync(join(root, '.github', 'workflows', 'vm-tests.yml'), 'utf8')) as { on: unknown; jobs: Record<string, Job> };
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
const jobs = Object.entries(wf.jobs);
const runs = jobs.flatMap(([, j]) => j.steps.map((s) => s.run ?? '')).join('\n');

test('every job runs the full kernel matrix and has a timeout', () => {
  assert.ok(jobs.length >= 1);
  for (const [name, job] of jobs) {
    assert.deepEqual(job.strategy?.matrix?.kernel, KERNELS, `job ${name} matrix`);
    assert.ok((job['timeout-minutes'] ?? 0) > 0, `job ${name} has timeout-minutes`);
  }
});

test('kernels come from the lvh kernel images, one tag per matrix entry', () => {
  assert.match(runs, /quay\.io\/lvh-images\/kernel-images:\$\{\{ matrix\.kernel \}\}-main/);
  assert.match(runs, /\/data\/kernels/);
});

test('the test job runs the same runner with --kernel-image on the downloaded kernel', () => {
  const testJob = jobs.find(([, j]) => j.steps.some((s) => /test:vm|vm-tests\/runner\.js/.test(s.run ?? '')));
  assert.ok(testJob, 'a job runs the VM runner');
  const [, job] = testJob;
  const download = job.steps.find((s) => s.uses?.startsWith('actions/download-artifact'));
  assert.ok(download, 'the test job downloads the kernel artifact');
  const upload = jobs
    .filter(([name]) => [job.needs ?? []].flat().includes(name))
    .flatMap(([, j]) => j.steps)
    .find((s) => s.uses?.startsWith('actions/upload-artifact') && s.with?.name === download.with?.name);
  assert.ok(upload, `a job the test job needs uploads ${download.with?.name}`);
  const runStep = job.steps.find((s) => /test:vm/.test(s.run ?? ''))!.run!;
  const image = /--kernel-image (\S+)/.exec(runStep)?.[1];
  assert.ok(image?.startsWith(String(download.with?.path)), `--kernel-image ${image} is inside the artifact path ${download.with?.path}`);
  const needs = [job.needs ?? []].flat();
  assert.ok(needs.length > 0, 'test job waits for the kernel job');
  assert.match(String(job.if ?? ''), /!cancelled\(\)/, 'one unavailable kernel must not skip the other kernels');
});

test('npm scripts the workflow calls exist and point at built files', () => {
  const scripts = [...runs.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]);
  assert.ok(scripts.length > 0);
  for (const s of scripts) {
    assert.ok(pkg.scripts[s], `package.json has script ${s}`);
    for (const m of pkg.scripts[s].matchAll(/node (dist\/\S+)\.js/g)) {
      assert.ok(existsSync(join(root, `${m[1].slice('dist/'.length)}.ts`)), `${m[1]}.js has a source file`);
    }
  }
});

test('scripts the workflow calls exist in the repo', () => {
  const files = [...runs.matchAll(/\bbash (\S+\.sh)/g)].map((m) => m[1]);
  assert.ok(files.includes('scripts/bootstrap.sh'));
  for (const f of files) assert.ok(existsSync(join(root, f)), `${f} exists`);
});

test('runner flags used by the workflow are ones the runner accepts', () => {
  const help = spawnSync(process.execPath, [join(root, 'dist', 'vm-tests', 'runner.js'), '--help'], { encoding: 'utf8' }).stdout;
  const line = runs.split('\n').find((l) => /test:vm --/.test(l))!;
  const flags = [...line.split('test:vm --')[1].matchAll(/(--[\w-]+)/g)].map((m) => m[1]);
  assert.ok(flags.includes('--kernel-image'));
  for (const f of flags) assert.match(help, new RegExp(`^\\s+${f}\\b`, 'm'), `runner accepts ${f}`);
});

test('third-party actions are the maintained major versions', () => {
  const uses = jobs.flatMap(([, j]) => j.steps.map((s) => s.uses).filter((u): u is string => !!u));
  for (const u of uses) assert.match(u, /^actions\/(checkout|setup-node|upload-artifact|download-artifact)@v4$/);
});
