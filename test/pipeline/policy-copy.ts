// Broken copies of the bundled policy repository, made in temp dirs per test.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const POLICIES_DIR = join(REPO_ROOT, 'policies');
export const CLI = join(REPO_ROOT, 'dist/cli/main.js');

export interface PolicyCopy {
  dir: string;
  read(file: string): Promise<string>;
  write(file: string, text: string): Promise<void>;
  edit(file: string, change: (text: string) => string): Promise<void>;
  remove(): Promise<void>;
}

export async function copyPolicies(): Promise<PolicyCopy> {
  const root = await mkdtemp(join(tmpdir(), 'lilith-policies-'));
  const dir = join(root, 'policies');
  await cp(POLICIES_DIR, dir, { recursive: true });
  const api: PolicyCopy = {
    dir,
    read: (file) => readFile(join(dir, file), 'utf8'),
    write: (file, text) => writeFile(join(dir, file), text),
    async edit(file, change) {
      const before = await api.read(file);
      const after = change(before);
      if (after === before) throw new Error(`edit of ${file} changed nothing`);
      await api.write(file, after);
    },
    remove: () => rm(root, { recursive: true, force: true }),
  };
  return api;
}

/** 1-based line and column of the first occurrence of `needle` in `text`. */
export function lineColOf(text: string, needle: string): { line: number; col: number } {
  const i = text.indexOf(needle);
  if (i < 0) throw new Error(`"${needle}" not found`);
  const before = text.slice(0, i);
  return { line: before.split('\n').length, col: i - before.lastIndexOf('\n') };
}
