// lilith run: start a command as a managed agent under Lilith.
import { readFile } from 'node:fs/promises';
import { parseCommandArgs, runCommand, UsageError } from '../args.js';
import type { LilithConfig, SeccompProfileName } from '../../capsule/config.js';
import { AgentRefused, launchAgent, type Attestation, type Attestor } from '../../confine/launch.js';
import { landlockSupport } from '../../confine/native.js';
import { adminGet, adminPost, DEFAULT_ADMIN_SOCKET } from '../../enforcer/client/index.js';

export const summary = 'run a command as a managed agent (cgroup, identity, Landlock, seccomp)';
export const usage = `usage: lilith run [--agent NAME] [--profile strict|standard|jit] [options] -- COMMAND [ARGS...]

Starts COMMAND in the agent cgroup for NAME, has the running enforcer attest it
(its SPIFFE ID comes from the capsule's registrations; unknown agents are
refused), then starts it in a new session (no controlling terminal) with
no_new_privs, Landlock, no capabilities and seccomp. A layer this kernel cannot
apply refuses the agent unless its registration lists it in allow_degraded;
then every run prints a warning. Signals and the exit code pass through; stdio
is untouched.

options:
  --agent NAME        agent name: cgroup <kernel.cgroup_root>/NAME (default: default)
  --profile P         seccomp profile, overriding the registration's
  --socket PATH       enforcer admin socket (default: /run/lilith/admin.sock)
  --standalone        no enforcer: attest against --policies DIR/lilith.json locally
  --policies DIR      policy directory for --standalone (default: ./policies)
  --netns             run in a fresh network namespace (veth to the host); needs
                      proxy.listen on a node address such as 169.254.77.1 (docs/deploy.md)
  --audit             log denied syscalls to the kernel audit log
  --verbose           print identity, Landlock ABI and the rules applied to stderr
`;

/** An admin-socket call with JSON in and out; a missing enforcer is named as such. */
async function adminRequest(
  socketPath: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  let res: { status: number; body: string };
  try {
    res = method === 'GET' ? await adminGet(socketPath, path, 10_000) : await adminPost(socketPath, path, body, 10_000);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED')
      throw new Error(`no running enforcer at ${socketPath} (start \`lilith enforcer\`, or use --standalone)`);
    throw err;
  }
  try {
    return { status: res.status, json: res.body ? JSON.parse(res.body) : null };
  } catch {
    throw new Error(`enforcer answered ${res.status} with non-JSON: ${res.body.slice(0, 200)}`);
  }
}

export function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const sep = argv.indexOf('--');
    if (sep < 0 || sep === argv.length - 1) throw new UsageError(`missing -- COMMAND\n\n${usage}`);
    const { values } = parseCommandArgs(
      argv.slice(0, sep),
      {
        agent: { type: 'string', default: 'default' },
        profile: { type: 'string' },
        socket: { type: 'string', default: DEFAULT_ADMIN_SOCKET },
        standalone: { type: 'boolean', default: false },
        policies: { type: 'string', default: 'policies' },
        audit: { type: 'boolean', default: false },
        netns: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
      },
      usage,
    );
    const profile = values.profile as SeccompProfileName | undefined;
    if (profile && !['strict', 'standard', 'jit'].includes(profile))
      throw new UsageError(`--profile must be strict, standard or jit\n\n${usage}`);

    let config: LilithConfig;
    let attest: Attestor;
    let kernelRedirect = false;
    let ca: { pem: string; keyDir?: string } | undefined;
    if (values.standalone) {
      config = JSON.parse(await readFile(`${values.policies}/lilith.json`, 'utf8')) as LilithConfig;
      // Only --standalone attests in-process: loaded on demand, it is the daemon's own code.
      const { attestAgent } = await import('../../enforcer/daemon/index.js');
      attest = async (req) => {
        const r = await attestAgent(req, config.registrations);
        if (!r.ok) throw new Error(r.error);
        return { spiffeId: r.spiffe_id, registration: r.registration };
      };
    } else {
      const cfg = await adminRequest(values.socket!, 'GET', '/v1/config');
      if (cfg.status !== 200) throw new Error(`enforcer has no active policy (${cfg.status}: ${JSON.stringify(cfg.json)})`);
      config = cfg.json as LilithConfig;
      // With the enforcer's cgroup programs attached, every connect is redirected to the proxy.
      const st = await adminRequest(values.socket!, 'GET', '/status');
      kernelRedirect = ((st.json as { kernel?: { mode?: string } } | null)?.kernel?.mode ?? 'off') !== 'off';
      // The node's interception CA: the agent trusts it without touching its code (CA bundle variables).
      const caReply = await adminRequest(values.socket!, 'GET', '/v1/ca');
      const caBody = caReply.json as { pem?: string; key_dir?: string } | null;
      if (caReply.status === 200 && caBody?.pem) ca = { pem: caBody.pem, keyDir: caBody.key_dir };
      attest = async (req) => {
        const r = await adminRequest(values.socket!, 'POST', '/v1/agents', {
          pid: req.pid,
          exe_path: req.exePath,
          exe_sha256: req.exeSha256,
        });
        const body = r.json as { spiffe_id?: string; registration?: Attestation['registration']; error?: string };
        if (r.status !== 200 || !body.spiffe_id || !body.registration) throw new Error(body.error ?? `enforcer answered ${r.status}`);
        return { spiffeId: body.spiffe_id, registration: body.registration };
      };
    }

    try {
      return await launchAgent({
        agent: values.agent!,
        command: argv.slice(sep + 1),
        config,
        attest,
        profile,
        audit: values.audit,
        kernelRedirect,
        ca,
        netns: values.netns,
        // Not behind --verbose: running with less confinement than planned is never silent.
        onDegraded: (degraded, identity) => {
          const without = degraded.map((m) => `${m.layer} (${m.why})`).join(', ');
          process.stderr.write(
            `lilith: warning: agent ${identity.spiffeId} runs DEGRADED (its allow_degraded permits it): without ${without}\n`,
          );
        },
        onPlan: (plan, identity) => {
          if (!values.verbose) return;
          const ll = landlockSupport();
          process.stderr.write(`lilith: agent ${identity.spiffeId} profile=${plan.profile} landlock-abi=${ll.abi}\n`);
          if (ll.notEnforced.length) process.stderr.write(`lilith: not enforced on this kernel: ${ll.notEnforced.join(', ')}\n`);
          process.stderr.write(
            `lilith: read-only ${plan.readOnly.join(':')}\nlilith: read-write ${plan.readWrite.join(':')}\nlilith: tcp connect ports ${plan.connectPorts.join(',')}\n`,
          );
          if (plan.carved.length) process.stderr.write(`lilith: credential paths kept out: ${plan.carved.join(', ')}\n`);
        },
      });
    } catch (err) {
      if (err instanceof AgentRefused) {
        process.stderr.write(`lilith: ${err.message}\n`);
        return 126;
      }
      throw err;
    }
  });
}
