// Shared argument parsing for subcommands: node's parseArgs with a usage error type
// so every command reports bad flags the same way (exit 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage.trimEnd()}`);
  }
}

/** Runs a command body, mapping UsageError to exit 2 and other errors to their message + exit 2. */
export async function runCommand(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    process.stderr.write(`lilith: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
}
