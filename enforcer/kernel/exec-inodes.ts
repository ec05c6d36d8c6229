// Resolves exec_allowlist programs to what the kernel allowlists: under BPF-LSM
// the allowlist also gates executable mappings, so each program brings its
// interpreter and shared libraries (read from its ELF headers), each named by
// device and inode. All the filesystem reads of a kernel plan happen here; the
// plan itself (plan.ts) only arranges the results.
import { statSync } from 'node:fs';
import { executableClosure, librarySearchDirs } from './elf-deps.js';

/** One file a program maps executable, by inode, or why it could not be stat'ed. */
export type ExecFile = { file: string; dev: bigint; ino: bigint } | { file: string; error: string };

/** One exec_allowlist program: its closure, or why the closure could not be read. */
export type ExecProgram = { path: string; files: ExecFile[]; missing: string[] } | { path: string; error: string };

export function resolveExecPrograms(paths: readonly string[]): ExecProgram[] {
  if (paths.length === 0) return [];
  const searchDirs = librarySearchDirs();
  return paths.map((path): ExecProgram => {
    let closure: { files: string[]; missing: string[] };
    try {
      closure = executableClosure(path, searchDirs);
    } catch (err) {
      return { path, error: (err as Error).message };
    }
    const files = closure.files.map((file): ExecFile => {
      try {
        const st = statSync(file, { bigint: true });
        return { file, dev: st.dev, ino: st.ino };
      } catch (err) {
        return { file, error: (err as Error).message };
      }
    });
    return { path, files, missing: closure.missing };
  });
}
