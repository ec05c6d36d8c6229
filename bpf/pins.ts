// Pins are what let enforcement outlive the daemon: every link is pinned under
// <pinRoot>/links/<program> and every map under <pinRoot>/<map>. A restarted
// daemon re-adopts the links still doing their job, and running this build's
// programs (same tag), instead of re-attaching (no unenforced moment), swaps
// stale or foreign ones new-before-old, and detachPinned() is the only thing
// that ends enforcement on purpose.
import { existsSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfError, BpfLink, BpfMap, BpfObject } from './loader.js';
import { SIZES } from './layout.js';
import { MAP_NAMES, type ProgramSpec } from './programs.js';

export const linkPinPath = (pinRoot: string, spec: ProgramSpec): string => join(pinRoot, 'links', spec.program);

export function mapsPinned(pinRoot: string): boolean {
  return MAP_NAMES.every((m) => existsSync(join(pinRoot, m)));
}

/**
 * Maps pinned by a build with other struct layouts cannot be reused (libbpf
 * would refuse with a terse log line): say so, and how to clear them. Never
 * removes them itself: they are what keeps the running enforcement.
 */
export function refuseIncompatiblePins(pinRoot: string): void {
  const path = join(pinRoot, 'lil_config');
  if (!existsSync(path)) return;
  const m = BpfMap.openPinned(path);
  try {
    if (m.valueSize !== SIZES.config) {
      throw new BpfError('attach', 22 /* EINVAL */, {
        target: pinRoot,
        detail:
          `maps pinned under ${pinRoot} come from an incompatible Lilith build (config is ${m.valueSize} bytes, ` +
          `this build uses ${SIZES.config}); detach them first (detachPinned('${pinRoot}'))`,
      });
    }
  } finally {
    m.close();
  }
}

/** A pinned link still doing its job: same cgroup for cgroup programs. */
function adoptable(link: BpfLink, spec: ProgramSpec, cgId: bigint): boolean {
  if (spec.kind === 'lsm') return true;
  try {
    return link.info().cgroupId === cgId;
  } catch {
    return false;
  }
}

/**
 * The pinned links of the wanted programs, by program name: `adopted` keep
 * enforcing as they are; `stale` (other cgroup, or maps gone) are replaced once
 * their successor is attached. Pins that are not links any more are removed.
 */
export function openPinnedLinks(
  pinRoot: string,
  wanted: readonly ProgramSpec[],
  cgId: bigint,
): { adopted: Map<string, BpfLink>; stale: Map<string, BpfLink> } {
  const adopted = new Map<string, BpfLink>();
  const stale = new Map<string, BpfLink>();
  const withMaps = mapsPinned(pinRoot);
  for (const spec of wanted) {
    const path = linkPinPath(pinRoot, spec);
    if (!existsSync(path)) continue;
    try {
      const link = BpfLink.openPinned(path);
      if (withMaps && adoptable(link, spec, cgId)) adopted.set(spec.program, link);
      else stale.set(spec.program, link);
    } catch {
      rmSync(path, { force: true });
    }
  }
  return { adopted, stale };
}

/** A pinned link that was not re-adopted because it runs another build's program. */
export interface ReplacedPin {
  readonly program: string;
  /** Tag of the program the pinned link runs ('unknown' when the kernel would not say). */
  readonly pinnedTag: string;
  /** Tag of the program this build loads ('not loaded' when it could not be loaded here). */
  readonly buildTag: string;
}

/**
 * Re-adoption only of our own programs: a pinned link whose program's tag (the
 * kernel's hash of its instructions) differs from the tag of the program this
 * build just loaded comes from another build (an older Lilith, a foreign
 * loader, a tampered pin) and moves from `adopted` to `stale`, to be replaced
 * new-before-old like any stale link. A link whose program cannot be described,
 * or whose counterpart did not load here, is not trusted either.
 */
export function refuseForeignPins(
  adopted: Map<string, BpfLink>,
  stale: Map<string, BpfLink>,
  buildTag: (program: string) => string | null,
): ReplacedPin[] {
  const replaced: ReplacedPin[] = [];
  for (const [program, link] of adopted) {
    let pinnedTag = 'unknown';
    try {
      pinnedTag = link.programInfo().tag;
    } catch {
      // left 'unknown': never equal to a build tag
    }
    const ours = buildTag(program);
    if (ours !== null && ours === pinnedTag) continue;
    adopted.delete(program);
    stale.set(program, link);
    replaced.push({ program, pinnedTag, buildTag: ours ?? 'not loaded' });
  }
  return replaced;
}

/** The log line for a pin that was replaced instead of re-adopted. */
export function describeReplacedPin(p: ReplacedPin): string {
  return (
    `refused to re-adopt pinned program ${p.program}: it runs tag ${p.pinnedTag}, this build loads ${p.buildTag} ` +
    '(another build or a foreign loader); replaced it, the new program attached before the old one was detached'
  );
}

/** Pins a freshly attached link, retiring the stale one it replaces; the new link is attached before the old one goes: no gap. */
export function pinReplacing(pinRoot: string, spec: ProgramSpec, link: BpfLink, old: BpfLink | undefined): void {
  if (old) {
    try {
      old.unpin();
    } catch {
      rmSync(linkPinPath(pinRoot, spec), { force: true });
    }
    old.destroy();
  }
  link.pin(linkPinPath(pinRoot, spec));
}

/** Creates and pins the shared maps from an object without loading any of its programs. */
export function pinMapsFrom(objPath: string, pinRoot: string): void {
  const obj = BpfObject.open(objPath, { pinRoot });
  try {
    for (const p of obj.programs()) p.setAutoload(false);
    obj.load();
  } finally {
    obj.close();
  }
}

/** Detaches and unpins everything under a pin root (also usable without a Kernel). */
export function detachPinned(pinRoot: string): void {
  const linksDir = join(pinRoot, 'links');
  if (existsSync(linksDir)) {
    for (const f of readdirSync(linksDir)) {
      const p = join(linksDir, f);
      let l: BpfLink | undefined;
      try {
        l = BpfLink.openPinned(p);
        // Cgroup links detach at once; LSM (tracing) links may not support
        // BPF_LINK_DETACH and go when their last reference (pin, fds) does.
        l.detach();
      } catch {
        // Not a link, already gone, or no detach: removing the pin and our fd is what is left.
      } finally {
        l?.destroy();
      }
      rmSync(p, { force: true });
    }
    rmdirSync(linksDir);
  }
  for (const m of MAP_NAMES) rmSync(join(pinRoot, m), { force: true });
  try {
    rmdirSync(pinRoot);
  } catch {
    // Something else lives there; leave it.
  }
}
