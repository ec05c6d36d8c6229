// The files a dynamically linked program maps executable when it starts: its
// ELF interpreter (ld.so) and the shared libraries its DT_NEEDED entries name,
// transitively, resolved the way ld.so does (DT_RUNPATH/DT_RPATH, then the
// ld.so.conf directories, then the default ones). Under BPF-LSM the exec
// allowlist also gates executable mappings (lsm/mmap_file), so allowlisting
// /usr/bin/node without libc would leave node unable to start.
//
// Read from the files, never by running them (ldd would run the loader on each).
// Libraries opened later with dlopen() are not found here; list them explicitly.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';

const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PT_LOAD = 1;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;
/** Program headers, the interpreter path and the dynamic table are small: a cap on one read bounds what a hostile file can make us allocate. */
const MAX_READ = 1024 * 1024;

interface ElfInfo {
  interp: string | null;
  needed: string[];
  runpath: string[];
}

function readAt(fd: number, offset: number, length: number): Buffer {
  if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || length > MAX_READ) throw new Error('ELF offsets out of range');
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, offset);
  if (n !== length) throw new Error('truncated ELF file');
  return buf;
}

/** The interpreter and dynamic dependencies of a 64-bit little-endian ELF file; null for anything else (scripts, static binaries have none). */
export function readElfDeps(path: string): ElfInfo | null {
  const fd = openSync(path, 'r');
  try {
    const h = Buffer.alloc(64);
    if (readSync(fd, h, 0, 64, 0) < 64 || h.readUInt32BE(0) !== 0x7f454c46) return null;
    if (h[4] !== 2 || h[5] !== 1) return null; // ELFCLASS64, little-endian only
    const phoff = Number(h.readBigUInt64LE(32));
    const phentsize = h.readUInt16LE(54);
    const phnum = h.readUInt16LE(56);
    if (phentsize < 56 || phnum > 512) throw new Error('malformed program headers');
    const ph = readAt(fd, phoff, phentsize * phnum);
    let interp: string | null = null;
    let dyn: { off: number; size: number } | null = null;
    const loads: Array<{ vaddr: bigint; off: bigint; filesz: bigint }> = [];
    for (let i = 0; i < phnum; i++) {
      const b = i * phentsize;
      const type = ph.readUInt32LE(b);
      const off = ph.readBigUInt64LE(b + 8);
      const vaddr = ph.readBigUInt64LE(b + 16);
      const filesz = ph.readBigUInt64LE(b + 32);
      if (type === PT_INTERP) interp = readAt(fd, Number(off), Number(filesz)).toString('latin1').replace(/\0.*$/s, '');
      else if (type === PT_DYNAMIC) dyn = { off: Number(off), size: Number(filesz) };
      else if (type === PT_LOAD) loads.push({ vaddr, off, filesz });
    }
    const info: ElfInfo = { interp, needed: [], runpath: [] };
    if (!dyn) return info;
    const table = readAt(fd, dyn.off, dyn.size);
    const neededOffsets: bigint[] = [];
    const pathOffsets: bigint[] = [];
    let strtab: bigint | null = null;
    for (let p = 0; p + 16 <= table.length; p += 16) {
      const tag = table.readBigInt64LE(p);
      const val = table.readBigUInt64LE(p + 8);
      if (tag === 0n) break;
      if (tag === DT_NEEDED) neededOffsets.push(val);
      else if (tag === DT_STRTAB) strtab = val;
      else if (tag === DT_RUNPATH || tag === DT_RPATH) pathOffsets.push(val);
    }
    if (strtab === null) return info;
    const seg = loads.find((l) => strtab! >= l.vaddr && strtab! < l.vaddr + l.filesz);
    if (!seg) throw new Error('DT_STRTAB outside every loaded segment');
    const strOff = Number(seg.off + (strtab - seg.vaddr));
    const str = (o: bigint): string => {
      const chunk = Buffer.alloc(4096);
      const n = readSync(fd, chunk, 0, 4096, strOff + Number(o));
      const end = chunk.subarray(0, n).indexOf(0);
      if (end < 0) throw new Error('unterminated string in the ELF string table');
      return chunk.toString('latin1', 0, end);
    };
    info.needed = neededOffsets.map(str);
    info.runpath = pathOffsets.flatMap((o) => str(o).split(':')).filter(Boolean);
    return info;
  } finally {
    closeSync(fd);
  }
}

/** An ld.so.conf include: a path whose last component may hold * and ? wildcards (what ldconfig's configs use). */
function expandInclude(pattern: string): string[] {
  const dir = dirname(pattern);
  const name = basename(pattern);
  if (!/[*?]/.test(name)) return [pattern];
  const re = new RegExp(
    `^${name
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  try {
    return readdirSync(dir)
      .filter((f) => re.test(f))
      .sort()
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/** Directories ld.so searches after RUNPATH: /etc/ld.so.conf (with its includes), then the defaults. */
export function librarySearchDirs(conf = '/etc/ld.so.conf'): string[] {
  const dirs: string[] = [];
  const seen = new Set<string>();
  const readConf = (file: string, depth: number) => {
    if (depth > 4 || seen.has(file)) return;
    seen.add(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return;
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/#.*$/, '').trim();
      if (!line) continue;
      const inc = /^include\s+(.+)$/.exec(line);
      if (inc) {
        const pattern = isAbsolute(inc[1]) ? inc[1] : join(dirname(file), inc[1]);
        for (const f of expandInclude(pattern)) readConf(f, depth + 1);
      } else if (isAbsolute(line)) dirs.push(line);
    }
  };
  readConf(conf, 0);
  dirs.push('/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib');
  return [...new Set(dirs)];
}

/**
 * `program` plus every file it maps executable at start (interpreter and
 * shared libraries, transitively), as real paths. Names that cannot be found
 * are returned in `missing` (the program would not start either).
 */
export function executableClosure(program: string, searchDirs = librarySearchDirs()): { files: string[]; missing: string[] } {
  const files = new Set<string>();
  const missing = new Set<string>();
  const queue = [realpathSync(program)];
  while (queue.length && files.size < 1024) {
    const file = queue.shift()!;
    if (files.has(file)) continue;
    files.add(file);
    let info: ElfInfo | null;
    try {
      info = readElfDeps(file);
    } catch {
      continue; // not an ELF file we can read: nothing more it needs from us
    }
    if (!info) continue;
    if (info.interp) {
      if (existsSync(info.interp)) queue.push(realpathSync(info.interp));
      else missing.add(info.interp);
    }
    const origin = dirname(file);
    const runpath = info.runpath.map((d) => d.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin));
    for (const name of info.needed) {
      const candidates = name.includes('/') ? [name] : [...runpath, ...searchDirs].map((d) => join(d, name));
      const found = candidates.find((c) => {
        try {
          return statSync(c).isFile();
        } catch {
          return false;
        }
      });
      if (found) queue.push(realpathSync(found));
      else missing.add(name);
    }
  }
  return { files: [...files], missing: [...missing] };
}
