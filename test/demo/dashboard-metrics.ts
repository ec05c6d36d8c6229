// Reads deploy/grafana/lilith.json: every PromQL expression it runs and the
// Lilith metric names those expressions query.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
export const DASHBOARD = join(REPO_ROOT, 'deploy', 'grafana', 'lilith.json');

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr: string; refId: string; datasource?: unknown }>;
  datasource?: unknown;
}

export interface Dashboard {
  panels: Panel[];
  templating: { list: Array<{ name: string; query?: unknown; definition?: string }> };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every PromQL expression: panel targets and template variable queries. */
export function expressions(d: Dashboard): string[] {
  const out: string[] = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push(t.expr);
  for (const v of d.templating.list) if (v.definition) out.push(v.definition);
  return out;
}

/** Metric names as exposed (histograms as NAME_bucket etc.), mapped to the family name prom-client registers. */
export function queriedFamilies(d: Dashboard): string[] {
  const names = new Set<string>();
  for (const e of expressions(d)) for (const m of e.matchAll(/\blilith_[a-z0-9_]+/g)) names.add(m[0]);
  return [...names].map((n) => n.replace(/_(bucket|sum|count)$/, '')).filter((n, i, all) => all.indexOf(n) === i);
}

/** Families with a `# TYPE` line in a Prometheus exposition. */
export function exposedFamilies(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]));
}
