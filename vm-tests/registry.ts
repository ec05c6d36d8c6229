// Scenario registry: every compiled module in dist/vm-tests/scenarios/ is a scenario named
// after its file. Adding a scenario = adding vm-tests/scenarios/<name>.ts; no list to edit.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BootLsm, Scenario } from './scenario.js';

const scenariosDir = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');
const NAME = /^[a-z0-9][a-z0-9-]*$/;

export function scenarioNames(): string[] {
  return readdirSync(scenariosDir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .filter((n) => NAME.test(n))
    .sort();
}

export async function loadScenario(name: string): Promise<Scenario> {
  if (!NAME.test(name)) throw new Error(`invalid scenario name ${JSON.stringify(name)}`);
  const known = scenarioNames();
  if (!known.includes(name)) throw new Error(`unknown scenario ${JSON.stringify(name)} (known: ${known.join(', ')})`);
  const mod = (await import(pathToFileURL(join(scenariosDir, `${name}.js`)).href)) as Partial<Scenario> & { default?: Partial<Scenario> };
  const s = typeof mod.run === 'function' ? mod : mod.default;
  if (!s || typeof s.run !== 'function' || typeof s.description !== 'string') {
    throw new Error(`scenario ${name} must export description: string and run(ctx)`);
  }
  const bootLsm = s.bootLsm ?? 'bpf';
  if (bootLsm !== 'bpf' && bootLsm !== 'no-bpf') throw new Error(`scenario ${name}: bootLsm must be 'bpf' or 'no-bpf'`);
  return { description: s.description, bootLsm, run: s.run.bind(s) };
}

export function bootLsmOf(s: Scenario): BootLsm {
  return s.bootLsm ?? 'bpf';
}
