// Scenario registry: every compiled module in dist/vm-tests/scenarios/ is a scenario named
// after its file. Adding a scenario = adding vm-tests/scenarios/<name>.ts; no list to edit.
// Extra directories (--scenarios-dir, used by the harness's own tests) are searched after it.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isBootLsm, LSM_LIST, type BootLsm, type Scenario } from './scenario.js';

export const builtinScenariosDir = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');
const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** name → compiled module path, across the built-in directory and `extraDirs` (first wins). */
export function scenarioFiles(extraDirs: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  for (const dir of [builtinScenariosDir, ...extraDirs.map((d) => resolve(d))]) {
    if (!existsSync(dir)) throw new Error(`scenario directory ${dir} does not exist`);
    for (const f of readdirSync(dir).sort()) {
      const name = f.slice(0, -3);
      if (f.endsWith('.js') && NAME.test(name) && !out.has(name)) out.set(name, join(dir, f));
    }
  }
  return out;
}

export function scenarioNames(extraDirs: string[] = []): string[] {
  return [...scenarioFiles(extraDirs).keys()].sort();
}

export async function loadScenario(name: string, extraDirs: string[] = []): Promise<Scenario> {
  if (!NAME.test(name)) throw new Error(`invalid scenario name ${JSON.stringify(name)}`);
  const files = scenarioFiles(extraDirs);
  const file = files.get(name);
  if (!file) throw new Error(`unknown scenario ${JSON.stringify(name)} (known: ${[...files.keys()].join(', ')})`);
  const mod = (await import(pathToFileURL(file).href)) as Partial<Scenario> & { default?: Partial<Scenario> };
  const s = typeof mod.run === 'function' ? mod : mod.default;
  if (!s || typeof s.run !== 'function' || typeof s.description !== 'string') {
    throw new Error(`scenario ${name} (${file}) must export description: string and run(ctx)`);
  }
  const bootLsm = s.bootLsm ?? 'bpf';
  if (!isBootLsm(bootLsm)) throw new Error(`scenario ${name}: bootLsm must be one of ${Object.keys(LSM_LIST).join(', ')}`);
  if (s.timeoutS !== undefined && !(Number.isFinite(s.timeoutS) && s.timeoutS > 0))
    throw new Error(`scenario ${name}: timeoutS must be a positive number of seconds`);
  return { description: s.description, bootLsm, timeoutS: s.timeoutS, run: s.run.bind(s) };
}

export function bootLsmOf(s: Scenario): BootLsm {
  return s.bootLsm ?? 'bpf';
}

/** The time a scenario gets: its own minimum or the run's --timeout, whichever is larger. */
export function timeoutSOf(s: Scenario, runTimeoutS: number): number {
  return Math.max(runTimeoutS, s.timeoutS ?? 0);
}
