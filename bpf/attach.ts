// attach(): brings Lilith's programs up under a pin root. It decides the mode,
// loads every object it wants (falling back to cgroup-only when an LSM object is
// refused in auto mode), re-adopts what a previous daemon pinned only where the
// pinned program is this build's (same tag) and replaces the rest new-before-old, writes config, heartbeat and unix allowlist before any new program
// can run, then attaches and pins. The steps that need no kernel live elsewhere
// (config.ts, mode.ts); this file is the ordering, which is what keeps it gap-free.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError, BpfObject, objectPath, type BpfLink } from './loader.js';
import { ensureBpffs } from './mounts.js';
import { cgroupId } from './cgroups.js';
import { resolveConfig, type KernelConfig, type ResolvedConfig } from './config.js';
import { lsmHooksMissing, programsFor, startingMode, type KernelMode } from './mode.js';
import { mapsPinned, openPinnedLinks, pinMapsFrom, pinReplacing, refuseForeignPins, refuseIncompatiblePins } from './pins.js';
import { PROGRAMS, type ProgramSpec } from './programs.js';
import { Kernel } from './kernel.js';

type MissingHook = { hook: string; reason: string };

/** What loading produced: the objects to attach from, and the mode and program set after any fallback. */
interface Loaded {
  mode: KernelMode;
  lsmWhy: string | null;
  toAttach: ProgramSpec[];
  readonly objects: Map<string, BpfObject>;
  readonly missing: MissingHook[];
  /** Optional programs this kernel cannot load or attach. */
  readonly unsupported: Set<string>;
}

/**
 * Loads Lilith's programs (or re-adopts the ones pinned under the pin root by
 * a previous daemon, without a moment unattached), writes the config and a
 * first heartbeat, and returns the handle the enforcer uses.
 */
export async function attach(config: KernelConfig): Promise<Kernel> {
  const r = resolveConfig(config);
  ensureBpffs();
  mkdirSync(join(r.pinRoot, 'links'), { recursive: true });
  const start = startingMode(r.mode, r.objectDir);
  refuseIncompatiblePins(r.pinRoot);
  const wanted = programsFor(start.mode, r.intercept);
  const { adopted, stale } = openPinnedLinks(r.pinRoot, wanted, cgroupId(r.cgroupPath));
  // Every wanted program is loaded, the pinned ones too: their tags are what a pin must match to be adopted.
  const loaded: Loaded = { ...start, toAttach: [...wanted], objects: new Map(), missing: [], unsupported: new Set() };
  try {
    loadObjects(r, loaded);
    const replaced = refuseForeignPins(adopted, stale, (program) => buildTag(loaded, program));
    loaded.toAttach = loaded.toAttach.filter((s) => !adopted.has(s.program));
    if (loaded.mode === 'cgroup-only' && loaded.lsmWhy) loaded.missing.push(...lsmHooksMissing(loaded.lsmWhy));
    // Nothing loaded and nothing pinned: load the always-present object for the maps.
    if (!mapsPinned(r.pinRoot)) pinMapsFrom(objectFile(r, 'cgroup_sock'), r.pinRoot);

    const kernel = new Kernel(r, loaded.mode, { active: [], missing: loaded.missing });
    // Config and a fresh heartbeat before any new program can run.
    kernel.configure({});
    kernel.setHeartbeat();
    kernel.setUnixAllowlist(r.unixKeys);

    const links: BpfLink[] = [...adopted.values()];
    const active: string[] = wanted.filter((s) => adopted.has(s.program)).map((s) => s.hook);
    for (const spec of loaded.toAttach) {
      if (spec.kind === 'lsm' && loaded.mode !== 'bpf-lsm') continue;
      if (loaded.unsupported.has(spec.program)) continue;
      const obj = loaded.objects.get(spec.object);
      if (!obj) continue;
      const prog = obj.program(spec.program);
      let link: BpfLink;
      try {
        link = spec.kind === 'lsm' ? prog.attachLsm() : prog.attachCgroup(r.cgroupPath);
      } catch (err) {
        if (!spec.cgroupModeOnly) throw err;
        loaded.missing.push({ hook: spec.hook, reason: `attach failed: ${(err as Error).message}` });
        continue;
      }
      const old = stale.get(spec.program);
      stale.delete(spec.program);
      pinReplacing(r.pinRoot, spec, link, old);
      links.push(link);
      active.push(spec.hook);
    }
    for (const old of stale.values()) old.destroy();
    kernel.adopt(links, active, adopted.size > 0 && loaded.toAttach.length === 0, replaced);
    return kernel;
  } finally {
    for (const obj of loaded.objects.values()) obj.close();
  }
}

/** The tag of `program` as this build loaded it, or null when it was not loaded here. */
function buildTag(loaded: Loaded, program: string): string | null {
  const spec = PROGRAMS.find((s) => s.program === program);
  const obj = spec && loaded.objects.get(spec.object);
  if (!obj) return null;
  try {
    return obj.program(program).info().tag;
  } catch {
    return null;
  }
}

function objectFile(r: ResolvedConfig, name: string): string {
  return r.objectDir ? join(r.objectDir, `${name}.bpf.o`) : objectPath(name);
}

/**
 * Loads each object that has wanted programs (attached or pinned); its maps are created or reused
 * from the pins. An optional object the kernel is too old for is recorded as
 * missing hooks. An LSM object that fails to load in auto mode drops us to
 * cgroup-only (queueing the cgroup-only programs) with the reason recorded.
 */
function loadObjects(r: ResolvedConfig, loaded: Loaded): void {
  const queue = [...new Set(loaded.toAttach.map((s) => s.object))];
  for (let i = 0; i < queue.length; i++) {
    const name = queue[i]!;
    const obj = BpfObject.open(objectFile(r, name), { pinRoot: r.pinRoot });
    try {
      for (const p of obj.programs()) {
        const spec = loaded.toAttach.find((s) => s.program === p.name);
        if (!spec) p.setAutoload(false);
        else if (spec.types) p.setType(spec.types.prog, spec.types.attach);
      }
      obj.load();
      loaded.objects.set(name, obj);
    } catch (err) {
      obj.close();
      const specs = PROGRAMS.filter((s) => s.object === name);
      if (specs.every((s) => s.cgroupModeOnly)) {
        // A kernel older than the hook (connect_unix: Linux 6.7) refuses the program type.
        for (const s of specs) {
          loaded.unsupported.add(s.program);
          loaded.missing.push({
            hook: s.hook,
            reason: `this kernel cannot load it (${(err as Error).message.split('\n')[0]}); needs Linux 6.7+`,
          });
        }
        continue;
      }
      const isLsm = specs.some((s) => s.kind === 'lsm');
      if (!isLsm || r.mode === 'bpf-lsm') throw withLogTail(err);
      loaded.lsmWhy = `loading ${name} failed: ${(err as Error).message}`;
      if (loaded.mode === 'bpf-lsm') {
        // Fall back: the cgroup-only programs are now wanted too.
        loaded.mode = 'cgroup-only';
        const more = programsFor('cgroup-only', r.intercept).filter((s) => s.cgroupModeOnly);
        loaded.toAttach = [...loaded.toAttach, ...more];
        for (const o of new Set(more.map((s) => s.object))) if (!queue.includes(o)) queue.push(o);
      }
    }
  }
}

/** A load failure whose message carries the end of the verifier log (the line that matters). */
function withLogTail(err: unknown): unknown {
  if (!(err instanceof BpfError) || !err.log) return err;
  const tail = err.log
    .split('\n')
    .filter((l) => l.trim())
    .slice(-12)
    .join('\n');
  return new BpfError(err.operation, err.errno, { log: err.log, detail: `${err.message}\nverifier log (end):\n${tail}` });
}
