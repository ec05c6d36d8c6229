// Where the demo finds the project: the CLI entry point, the built agent and the
// native helpers. dist/cli/demo/*.js and cli/demo/*.ts both sit three levels below the root.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export const ROOT = existsSync(join(here, '..', '..', 'package.json')) ? join(here, '..', '..') : join(here, '..', '..', '..');
/** The built CLI every step runs, as a user would. */
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
/** The agent program `lilith run` starts (built next to this file). */
export const AGENT = join(ROOT, 'dist', 'cli', 'demo', 'agent.js');
export const BPF_OBJECT = join(ROOT, 'bpf', 'build', 'cgroup_connect.bpf.o');
