#!/usr/bin/env node
// `lilith` command dispatcher. Each subcommand lives in cli/commands/<name>.ts and
// exports `summary`, `usage` and `run(argv): Promise<number>` (the exit code).
import { pathToFileURL } from 'node:url';

export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** Every subcommand, in the order `lilith --help` lists them. */
const COMMANDS: Record<string, string> = {
  validate: 'validate',
  keygen: 'keygen',
  sign: 'sign',
  verify: 'verify',
  publish: 'publish',
  timestamp: 'timestamp',
  trust: 'trust',
  state: 'state',
  prove: 'prove',
  authorize: 'authorize',
  enforcer: 'enforcer',
  status: 'status',
  audit: 'audit',
  run: 'run',
  demo: 'demo',
};

async function load(name: string): Promise<Command | undefined> {
  const file = COMMANDS[name];
  if (!file) return undefined;
  try {
    return (await import(`./commands/${file}.js`)) as Command;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(err).includes(`commands/${file}.js`)) return undefined;
    throw err;
  }
}

async function help(): Promise<void> {
  const lines = ['usage: lilith <command> [options]', '', 'commands:'];
  for (const name of Object.keys(COMMANDS)) {
    const cmd = await load(name);
    if (cmd) lines.push(`  ${name.padEnd(10)} ${cmd.summary}`);
  }
  lines.push('', 'Run `lilith <command> --help` for the options of one command.');
  process.stdout.write(lines.join('\n') + '\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    await help();
    return name ? 0 : 2;
  }
  const cmd = await load(name);
  if (!cmd) {
    process.stderr.write(`lilith: unknown command '${name}' (see lilith --help)\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.usage.trimEnd() + '\n');
    return 0;
  }
  return cmd.run(rest);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href || process.argv[1]?.endsWith('bin/lilith.js')) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`lilith: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
