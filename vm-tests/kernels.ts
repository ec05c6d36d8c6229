// Kernel artifacts for the VMs: Debian kernels fetched with apt-get download and cached under
// .cache/vm/kernels/<release>/, or any bzImage given by path (e.g. an lvh kernel image).
// The cache keeps only what a boot needs: vmlinuz, config, and the 9p/virtio modules
// (decompressed, in load order), so a cached kernel is a few MB, not the 400 MB package.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { run, runBytes } from './exec.js';
import { aptUpdate } from './tools.js';

export interface KernelArtifacts {
  /** Name used in reports: the Debian release (`6.1.0-56-amd64`) or the image file name. */
  readonly label: string;
  readonly vmlinuz: string;
  /** Kernel modules to insmod before mounting 9p, dependencies first; empty when built in or unknown. */
  readonly modules: string[];
  /** Where `modules` came from, or why there are none (printed when the 9p mount fails). */
  readonly modulesNote: string;
}

/** Debian series the local matrix runs; the newest package of each is used. */
export const DEBIAN_SERIES: Record<string, RegExp> = {
  '6.1': /^linux-image-(6\.1\.0-(\d+)-amd64)$/,
  '6.12': /^linux-image-(6\.12\.(\d+)\+deb12-amd64)$/,
};

/**
 * What the guest needs to mount the host over virtio 9p, and veth for the network-namespace
 * scenario (a pair between the guest's root namespace and an agent's); dependencies are
 * resolved from the modules. A cached kernel made for a different list is fetched again.
 */
const ROOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'veth'];

type Log = (m: string) => void;

function newestPackage(series: string, log: Log): string | null {
  const re = DEBIAN_SERIES[series];
  const prefix = series === '6.1' ? 'linux-image-6.1.0-' : 'linux-image-6.12.';
  const list = () =>
    run('apt-cache', ['pkgnames', prefix])
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => re.test(l))
      .sort((a, b) => Number(re.exec(b)![2]) - Number(re.exec(a)![2]));
  let names = list();
  if (!names.length && process.getuid?.() === 0) {
    aptUpdate(log);
    names = list();
  }
  return names[0] ?? null;
}

function cachedReleases(cacheRoot: string, series: string): string[] {
  const re = DEBIAN_SERIES[series];
  if (!existsSync(cacheRoot)) return [];
  return readdirSync(cacheRoot)
    .filter((d) => re.test(`linux-image-${d}`) && existsSync(join(cacheRoot, d, 'meta.json')))
    .sort((a, b) => Number(re.exec(`linux-image-${b}`)![2]) - Number(re.exec(`linux-image-${a}`)![2]));
}

/** Whether the cache entry in `dir` was made for ROOT_MODULES (older entries carry no `wanted`). */
function cacheCurrent(dir: string): boolean {
  if (!existsSync(join(dir, 'meta.json'))) return false;
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { wanted?: string[] };
  return JSON.stringify(meta.wanted ?? null) === JSON.stringify(ROOT_MODULES);
}

function loadCached(dir: string): KernelArtifacts {
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { label: string; modules: string[] };
  return {
    label: meta.label,
    vmlinuz: join(dir, 'vmlinuz'),
    modules: meta.modules.map((m) => join(dir, 'modules', m)),
    modulesNote: `cached Debian modules in ${dir}`,
  };
}

export function debianKernel(series: string, cacheRoot: string, log: Log): KernelArtifacts {
  if (!DEBIAN_SERIES[series])
    throw new Error(`unknown kernel ${JSON.stringify(series)}: use ${Object.keys(DEBIAN_SERIES).join(' or ')}, or --kernel-image PATH`);
  let pkg: string | null = null;
  try {
    pkg = newestPackage(series, log);
  } catch (err) {
    log(`apt-cache failed (${(err as Error).message.split('\n')[0]}); trying the cache`);
  }
  const release = pkg ? DEBIAN_SERIES[series].exec(pkg)![1] : cachedReleases(cacheRoot, series)[0];
  if (!release) throw new Error(`no linux-image package for ${series} in the apt lists and nothing cached in ${cacheRoot}`);
  const dir = join(cacheRoot, release);
  if (cacheCurrent(dir)) return loadCached(dir);
  // Offline with an entry made for another module list: boot what is there (a scenario needing
  // the missing module says so) rather than nothing.
  if (!pkg && existsSync(join(dir, 'meta.json'))) return loadCached(dir);

  log(`fetching linux-image-${release} with apt-get download`);
  const tmp = mkdtempSync(join(tmpdir(), 'lilith-kernel-'));
  try {
    // _apt cannot write into a 0700 mkdtemp dir; apt then downloads unsandboxed as root, which is fine.
    run('apt-get', ['download', '-qq', `linux-image-${release}`], { cwd: tmp, timeoutMs: 600_000 });
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download linux-image-${release} produced no .deb`);
    const root = join(tmp, 'root');
    run('dpkg-deb', ['-x', join(tmp, deb), root], { timeoutMs: 300_000 });
    // Staged under a per-process name and renamed into place: two runners fetching the same
    // kernel at once both succeed, and a half-written cache entry is never visible.
    const staging = `${dir}.partial-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(join(staging, 'modules'), { recursive: true });
    copyFileSync(join(root, 'boot', `vmlinuz-${release}`), join(staging, 'vmlinuz'));
    copyFileSync(join(root, 'boot', `config-${release}`), join(staging, 'config'));
    const modules = resolveModules(join(root, 'lib', 'modules', release), ROOT_MODULES);
    for (const m of modules) writeFileSync(join(staging, 'modules', `${m.name}.ko`), m.data);
    writeFileSync(
      join(staging, 'meta.json'),
      `${JSON.stringify({ label: release, package: deb, wanted: ROOT_MODULES, modules: modules.map((m) => `${m.name}.ko`) }, null, 2)}\n`,
    );
    // An entry for an older module list is moved aside first (rename cannot replace a directory).
    if (existsSync(dir) && !cacheCurrent(dir)) {
      const old = `${dir}.old-${process.pid}`;
      try {
        renameSync(dir, old);
        rmSync(old, { recursive: true, force: true });
      } catch {
        // another runner replaced it first
      }
    }
    try {
      renameSync(staging, dir);
    } catch (err) {
      rmSync(staging, { recursive: true, force: true });
      if (!cacheCurrent(dir)) throw err;
      return loadCached(dir); // another runner cached it first
    }
    log(`cached ${release}: vmlinuz + ${modules.length} modules (${modules.map((m) => m.name).join(', ')})`);
    return loadCached(dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A kernel image by path; modules come from `modulesDir` (a lib/modules/<release> tree) if given. */
export function customKernel(image: string, modulesDir: string | undefined, cacheRoot: string): KernelArtifacts {
  const vmlinuz = resolve(image);
  if (!existsSync(vmlinuz) || !statSync(vmlinuz).isFile()) throw new Error(`--kernel-image ${image}: no such file`);
  if (!modulesDir) {
    return {
      label: basename(vmlinuz),
      vmlinuz,
      modules: [],
      modulesNote:
        'no --modules-dir given: the kernel must have virtio-pci, 9pnet_virtio and 9p built in (CONFIG_NET_9P=y, CONFIG_NET_9P_VIRTIO=y, CONFIG_9P_FS=y)',
    };
  }
  // veth may be missing from a custom tree: only the netns scenario needs it, and it says so.
  const mods = resolveModules(resolve(modulesDir), ROOT_MODULES, ['veth']);
  const dir = join(cacheRoot, 'custom', basename(vmlinuz).replace(/[^\w.+-]/g, '_'));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const m of mods) writeFileSync(join(dir, `${m.name}.ko`), m.data);
  return {
    label: basename(vmlinuz),
    vmlinuz,
    modules: mods.map((m) => join(dir, `${m.name}.ko`)),
    modulesNote: `modules from ${modulesDir}`,
  };
}

interface Module {
  readonly name: string;
  readonly data: Buffer;
}

/** Module names are compared with '-' and '_' unified, as the kernel does. */
const norm = (n: string) => n.replace(/-/g, '_');

/**
 * Finds `roots` and their dependencies (read from each module's .modinfo `depends=`) under a
 * lib/modules/<release> tree; modules listed in modules.builtin are skipped. Returns them
 * decompressed, dependencies first. Roots named in `optional` are left out when absent.
 */
export function resolveModules(modDir: string, roots: string[], optional: readonly string[] = []): Module[] {
  if (!existsSync(join(modDir, 'kernel'))) throw new Error(`${modDir} is not a lib/modules/<release> directory (no kernel/)`);
  const builtin = new Set(
    existsSync(join(modDir, 'modules.builtin'))
      ? readFileSync(join(modDir, 'modules.builtin'), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => norm(basename(l).replace(/\.ko.*$/, '')))
      : [],
  );
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) files.set(norm(e.name.replace(/\.ko.*$/, '')), p);
    }
  };
  walk(join(modDir, 'kernel'));

  const out: Module[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]) => {
    const n = norm(name);
    if (seen.has(n) || builtin.has(n)) return;
    seen.add(n);
    const file = files.get(n);
    if (!file)
      throw new Error(`module ${n} (needed by ${chain.join(' <- ') || 'the 9p host share'}) not found under ${modDir} and not built in`);
    const data = readModule(file);
    for (const dep of modinfoField(data, 'depends')) visit(dep, [n, ...chain]);
    out.push({ name: n, data });
  };
  for (const r of roots) {
    if (optional.includes(r) && !files.has(norm(r)) && !builtin.has(norm(r))) continue;
    visit(r, []);
  }
  return out;
}

function readModule(file: string): Buffer {
  if (file.endsWith('.xz')) return runBytes('xz', ['-dc', file]);
  if (file.endsWith('.zst')) return runBytes('zstd', ['-dcq', file]);
  if (file.endsWith('.gz')) return runBytes('gzip', ['-dc', file]);
  return readFileSync(file);
}

/** Values of `field=` in the module's .modinfo strings (NUL-separated), comma-split. */
function modinfoField(ko: Buffer, field: string): string[] {
  const key = Buffer.from(`\0${field}=`);
  const at = ko.indexOf(key);
  if (at < 0) return [];
  const start = at + key.length;
  const end = ko.indexOf(0, start);
  return ko.subarray(start, end).toString('latin1').split(',').filter(Boolean);
}
