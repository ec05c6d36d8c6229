// Which host process sent a DNS datagram the kernel did not record (the
// cgroup_skb egress program records managed senders in every namespace; this
// is the fallback for the rest): the UDP socket bound to its source port
// (/proc/net/udp{,6} → inode) and the process holding that inode. Those
// tables describe the host's network namespace only, so a datagram from an
// address that is not the host's own (a container, a pod, `lilith run
// --netns`) is never looked up here: the same port number in the host
// namespace may belong to any other process.
// Finding the holder means reading every process's fd table, so it is done at
// most once at a time and shared: a scan maps every socket inode on the host
// to its process, queries arriving meanwhile wait for that same scan, and a
// remembered holder is re-verified by reading only its own fd table. A flood
// of queries therefore costs one /proc walk per wave, not one per query, and
// other agents' queries are answered after at most that walk.
import { readFile, readdir, readlink } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';

/** Whether `address` is one of the host namespace's own (loopback included), v4-mapped IPv6 unwrapped. */
export function isHostAddress(address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (a.startsWith('127.') || a === '::1') return true;
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) if (i.address === a) return true;
  return false;
}

/** The inode of the UDP socket bound to local `port`, or null. */
async function inodeOfPort(port: number): Promise<string | null> {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    let at = text.indexOf(hexPort);
    while (at >= 0) {
      const lineStart = text.lastIndexOf('\n', at) + 1;
      const lineEnd = text.indexOf('\n', at);
      const f = text
        .slice(lineStart, lineEnd < 0 ? undefined : lineEnd)
        .trim()
        .split(/\s+/);
      // Field 1 is local_address:port; field 9 the inode.
      if (f.length >= 10 && f[1].endsWith(hexPort) && f[9] !== '0') return f[9];
      at = text.indexOf(hexPort, at + 1);
    }
  }
  return null;
}

async function holds(pid: number, want: string): Promise<boolean> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === want) return true;
  return false;
}

async function scanAll(): Promise<Map<string, number>> {
  const map = new Map<string, number>();
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (link.startsWith('socket:[')) map.set(link.slice(8, -1), Number(pid));
    }
  }
  return map;
}

export class UdpOwners {
  #known = new Map<string, number>();
  #scan: Promise<Map<string, number>> | null = null;
  #scannedAt = 0;

  /** The pid holding the UDP socket bound to `port`, or null (also for a sender that is not a host address). */
  async ownerOf(address: string, port: number): Promise<number | null> {
    if (!isHostAddress(address)) return null;
    const inode = await inodeOfPort(port);
    if (!inode) return null;
    const want = `socket:[${inode}]`;
    const cached = this.#known.get(inode);
    if (cached !== undefined && (await holds(cached, want))) return cached;
    const started = Date.now();
    // A scan that began after this query arrived already saw its socket; else start (or join) one.
    let map = await (this.#scan ?? this.#startScan());
    if (!map.has(inode) && this.#scannedAt < started) map = await (this.#scan ?? this.#startScan());
    const pid = map.get(inode);
    return pid === undefined ? null : pid;
  }

  #startScan(): Promise<Map<string, number>> {
    const began = Date.now();
    this.#scan = scanAll().then((map) => {
      this.#scan = null;
      this.#scannedAt = began;
      this.#known = map;
      return map;
    });
    return this.#scan;
  }
}
