// A fresh network namespace for one agent (`lilith run --netns`, the netns
// tests): a veth pair to the host, a /30 out of 169.254.78.0/24, the default
// route through the host side. Nothing is forwarded (the host keeps
// ip_forward as it is), so the only thing the agent reaches is the host
// itself, and of the host only what the cgroup programs send it to: every
// managed connect is rewritten to the node proxy address (docs/kernel.md,
// "Network namespaces"), which must be a local address of the host other than
// loopback — 127.0.0.1 inside the namespace is the namespace's own loopback.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { isIPv4 } from 'node:net';

/** Link-local /24 carved into /30s, one per namespace (64 at once). */
const POOL = '169.254.78';

export class NetnsError extends Error {
  readonly code: 'NETNS_PROXY_LOOPBACK' | 'NETNS_NO_NODE_ADDRESS' | 'NETNS_POOL_EXHAUSTED' | 'NETNS_SETUP';
  constructor(code: NetnsError['code'], message: string) {
    super(message);
    this.name = 'NetnsError';
    this.code = code;
  }
}

export interface AgentNetns {
  /** `ip netns` name; the namespace file is /run/netns/<name>. */
  readonly name: string;
  readonly path: string;
  /** Host side of the veth pair and its address (the namespace's gateway). */
  readonly hostIf: string;
  readonly hostAddress: string;
  /** The agent's address: what the proxy sees as the connection's peer. */
  readonly agentAddress: string;
  /** Deletes the namespace (and with it both ends of the veth pair). */
  remove(): void;
}

function ip(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new NetnsError('NETNS_SETUP', `ip ${args.join(' ')}: ${stderr || (err as Error).message}`);
  }
}

/** Whether `address` is configured on one of this (host) namespace's interfaces. */
export function isLocalAddress(address: string): boolean {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.address === address) return true;
  return false;
}

/**
 * Checks that agents in another namespace can reach `proxyAddress`: IPv4, not
 * loopback (127/8 never leaves a namespace), and local to this host.
 */
export function checkNodeAddress(proxyAddress: string): void {
  if (!isIPv4(proxyAddress) || proxyAddress.startsWith('127.'))
    throw new NetnsError(
      'NETNS_PROXY_LOOPBACK',
      `proxy.listen address ${proxyAddress} is not reachable from a network namespace (loopback is per namespace): ` +
        'set proxy.listen (and proxy.dns_listen) to the node proxy address, e.g. 169.254.77.1, configured on the host (docs/deploy.md)',
    );
  if (!isLocalAddress(proxyAddress))
    throw new NetnsError(
      'NETNS_NO_NODE_ADDRESS',
      `proxy address ${proxyAddress} is not configured on this host: add it (ip addr add ${proxyAddress}/32 dev lo) before the enforcer starts (docs/deploy.md)`,
    );
}

/** Adds `address`/32 to `dev` (default lo) unless the host already has it; returns whether it was added. */
export function ensureNodeAddress(address: string, dev = 'lo'): boolean {
  if (!isIPv4(address)) throw new NetnsError('NETNS_SETUP', `${address} is not an IPv4 address`);
  if (isLocalAddress(address)) return false;
  ip(['addr', 'add', `${address}/32`, 'dev', dev]);
  return true;
}

/** Removes an address ensureNodeAddress added. */
export function removeNodeAddress(address: string, dev = 'lo'): void {
  if (isLocalAddress(address)) ip(['addr', 'del', `${address}/32`, 'dev', dev]);
}

/** The first free /30 of the pool: its host side address is not in use here. */
function freeSlot(): number {
  for (let slot = 0; slot < 64; slot++) if (!isLocalAddress(`${POOL}.${slot * 4 + 1}`)) return slot;
  throw new NetnsError('NETNS_POOL_EXHAUSTED', `no free /30 left in ${POOL}.0/24 (64 agent namespaces at once)`);
}

/** Creates the namespace `name` (≤ 11 characters: interface names derive from it). */
export function createAgentNetns(name: string): AgentNetns {
  if (!/^[a-z0-9-]{1,11}$/.test(name)) throw new NetnsError('NETNS_SETUP', `netns name "${name}" must be 1-11 of [a-z0-9-]`);
  const path = `/run/netns/${name}`;
  if (existsSync(path)) throw new NetnsError('NETNS_SETUP', `network namespace ${name} exists already`);
  const slot = freeSlot();
  const hostAddress = `${POOL}.${slot * 4 + 1}`;
  const agentAddress = `${POOL}.${slot * 4 + 2}`;
  const hostIf = `${name}-h`;
  ip(['netns', 'add', name]);
  const remove = (): void => {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  try {
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
    ip(['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    ip(['link', 'set', hostIf, 'up']);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    ip(['-n', name, 'addr', 'add', `${agentAddress}/30`, 'dev', 'eth0']);
    ip(['-n', name, 'link', 'set', 'eth0', 'up']);
    ip(['-n', name, 'route', 'add', 'default', 'via', hostAddress]);
  } catch (err) {
    remove();
    throw err;
  }
  return { name, path, hostIf, hostAddress, agentAddress, remove };
}
