// `lilith run`: start a command as a managed, confined agent.
// Sequence: create the agent cgroup → spawn lilith-confine, which joins it and
// reports "ready <pid>" → the enforcer (or, standalone, the local config)
// attests that process and resolves its SPIFFE ID and registration → we send
// "go" with that registration's rules → the helper starts a new session, sets
// no_new_privs, Landlock, drops every capability, loads seccomp and execs.
// Refused agents never start, and neither do agents whose confinement this
// kernel cannot fully apply, unless their registration allows it (allow_degraded).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { LilithConfig, Registration, SeccompProfileName } from '../capsule/config.js';
import { parseHostPort } from '../net/address.js';
import { agentCgroup } from './cgroup.js';
import { confineArgs, planConfinement, type ConfinePlan } from './plan.js';
import { kernelSupport, requireHelper } from './native.js';
import { checkNodeAddress, createAgentNetns, type AgentNetns } from './netns.js';
import { decideDegraded, describeMissing, missingLayers, type KernelSupport, type MissingLayer } from './degraded.js';

export interface Attestation {
  spiffeId: string;
  registration: Registration;
}

/** Who decides the agent's identity: the running enforcer, or the local config (standalone). */
export type Attestor = (req: { pid: number; exePath: string; exeSha256: string }) => Promise<Attestation>;

export interface LaunchOptions {
  agent: string;
  command: string[];
  config: LilithConfig;
  attest: Attestor;
  /** Overrides the registration's profile. */
  profile?: SeccompProfileName;
  audit?: boolean;
  /** The kernel redirects this agent's connects to the proxy (the enforcer runs its cgroup programs). */
  kernelRedirect?: boolean;
  /** Called with the rules about to be applied, before the agent starts. */
  onPlan?: (plan: ConfinePlan, identity: Attestation) => void;
  /** Called when the agent starts without layers its registration's allow_degraded permits to be missing. */
  onDegraded?: (degraded: MissingLayer[], identity: Attestation) => void;
  /** This kernel's support (default: asked of lilith-confine). */
  kernel?: KernelSupport;
  /** The enforcer's interception CA: the agent trusts it (a CA bundle and the usual variables), its key directory stays out of reach. */
  ca?: { pem: string; keyDir?: string };
  /**
   * Run the agent in a fresh network namespace (veth pair to the host, default
   * route through it; confine/netns.ts). proxy.listen must be a node address
   * the namespace can reach (not loopback), or the agent is refused.
   */
  netns?: boolean;
}

/** Variables runtimes read a CA bundle from when they ignore the system store. */
export const CA_BUNDLE_VARS = ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO'];

const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem'];

/**
 * Writes the agent's CA bundle: the system store plus the node's interception CA,
 * in a directory of its own (readable, so Landlock can allow just it).
 */
export function writeCaBundle(pem: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'lilith-ca-bundle-'));
  chmodSync(dir, 0o755);
  let system = '';
  for (const f of SYSTEM_BUNDLES) {
    try {
      system = readFileSync(f, 'utf8');
      break;
    } catch {
      // next
    }
  }
  const file = join(dir, 'ca-bundle.pem');
  writeFileSync(file, `${system}${system && !system.endsWith('\n') ? '\n' : ''}${pem}`, { mode: 0o644 });
  return { dir, file };
}

export class AgentRefused extends Error {}

function resolveCommand(cmd: string): string {
  if (cmd.includes('/')) return realpathSync(cmd);
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, cmd);
    try {
      accessSync(candidate, constants.X_OK);
      return realpathSync(candidate);
    } catch {
      // keep looking
    }
  }
  throw new Error(`command not found: ${cmd}`);
}

function proxyPort(config: LilithConfig): number {
  return parseHostPort(config.proxy.listen, 'proxy.listen').port;
}

// Not `for await`: leaving that loop would destroy the socket the "go" must go through.
function readReady(stream: Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += String(chunk);
      const m = /^ready (\d+)\n/.exec(buf);
      if (m || buf.length > 64) {
        stream.off('data', onData);
        stream.off('end', onEnd);
        if (m) resolve(Number(m[1]));
        else reject(new Error(`unexpected message from lilith-confine: ${JSON.stringify(buf)}`));
      }
    };
    const onEnd = () => reject(new Error('lilith-confine exited before it was ready'));
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

// The agent runs in its own session with no controlling terminal: the terminal's
// signals (^C, ^\, hangup, resize) reach only us, and we pass them on.
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

/** Runs the agent to completion; resolves with its exit code (128+signal when killed by one). */
export async function launchAgent(opts: LaunchOptions): Promise<number> {
  const exePath = resolveCommand(opts.command[0]);
  const bundle = opts.ca ? writeCaBundle(opts.ca.pem) : null;
  const env = bundle ? { ...process.env, ...Object.fromEntries(CA_BUNDLE_VARS.map((v) => [v, bundle.file])) } : process.env;
  const exeSha256 = createHash('sha256').update(readFileSync(exePath)).digest('hex');
  const cgroup = agentCgroup(opts.config.kernel.cgroup_root, opts.agent);
  const helperArgs = ['--cgroup-procs', `${cgroup.dir}/cgroup.procs`, '--sync-fd', '3', '--', exePath, ...opts.command.slice(1)];
  let ns: AgentNetns | undefined;
  if (opts.netns) {
    // Refused before anything starts: a namespace the proxy is unreachable from would only break the agent.
    checkNodeAddress(parseHostPort(opts.config.proxy.listen, 'proxy.listen').host);
    ns = createAgentNetns(`lr${process.pid.toString(36)}`);
  }
  // nsenter joins the namespace and execs the helper in place: the pid it reports is the agent's.
  const child = ns
    ? spawn('nsenter', [`--net=${ns.path}`, requireHelper(), ...helperArgs], { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], env })
    : spawn(requireHelper(), helperArgs, { stdio: ['inherit', 'inherit', 'inherit', 'pipe'], argv0: opts.command[0], env });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const sync = child.stdio[3] as Socket;
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  for (const sig of FORWARDED) process.on(sig, forward);
  try {
    const pid = await Promise.race([
      readReady(sync),
      exited.then(() => Promise.reject(new Error('lilith-confine exited before it was ready'))),
    ]);
    let identity: Attestation;
    try {
      identity = await opts.attest({ pid, exePath, exeSha256 });
    } catch (err) {
      sync.end('no');
      await exited;
      throw new AgentRefused(`agent "${opts.agent}" refused: ${(err as Error).message}`);
    }
    const plan = planConfinement({
      filesystem: identity.registration.filesystem,
      profile: opts.profile ?? identity.registration.profile,
      proxyPort: proxyPort(opts.config),
      kernelRedirect: opts.kernelRedirect,
      extraReadOnly: bundle ? [bundle.dir] : undefined,
      secrets: opts.ca?.keyDir ? [opts.ca.keyDir] : undefined,
    });
    const { refused, degraded } = decideDegraded(missingLayers(opts.kernel ?? kernelSupport()), identity.registration.allow_degraded);
    if (refused.length) {
      sync.end('no');
      await exited;
      throw new AgentRefused(
        `agent "${opts.agent}" (${identity.spiffeId}) refused: this kernel cannot apply ${describeMissing(refused)}. ` +
          `It does not run with less confinement than planned unless its registration lists ` +
          `${refused.map((m) => `"${m.layer}"`).join(', ')} in allow_degraded (lilith.json)`,
      );
    }
    opts.onPlan?.(plan, identity);
    if (degraded.length) opts.onDegraded?.(degraded, identity);
    const allowDegraded = degraded.map((m) => m.layer);
    sync.end(Buffer.from(['go', ...confineArgs(plan, { audit: opts.audit, allowDegraded })].join('\0') + '\0'));
    const [code, signal] = await exited;
    return code ?? 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
  } finally {
    for (const sig of FORWARDED) process.off(sig, forward);
    if (bundle) rmSync(bundle.dir, { recursive: true, force: true });
    ns?.remove();
  }
}
