// `lilith demo` (what `npm start` runs): the product's whole story, for real, on
// this machine, told step by step. Each step lives in cli/demo/.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseCommandArgs, runCommand } from '../args.js';
import { startAgent } from '../demo/agent-run.js';
import { Cleanup } from '../demo/cleanup.js';
import { type DemoContext, emptyOutcome } from '../demo/context.js';
import { type Enforcer, startFleet } from '../demo/fleet.js';
import { hotSwap } from '../demo/hot-swap.js';
import { elapsedSeconds, say, skipped, step } from '../demo/narrate.js';
import { createPolicyRepo } from '../demo/policy-repo.js';
import { preflight } from '../demo/preflight.js';
import { ESCALATING_PR, gateAndMerge, SAFE_PR } from '../demo/pull-requests.js';
import { release, startCapsuleServer } from '../demo/release.js';
import { freePort, startExfilListener, startFilesServer } from '../demo/servers.js';
import { summarize, whereNext } from '../demo/summary.js';

export const summary = 'the whole story for real: a policy PR through the proof gate, a fleet that follows, an agent under enforcement';

export const usage = `usage: lilith demo [--policies DIR] [--work DIR] [--keep-running] [--no-kernel]

Runs, on this machine, in about a minute:
  1. a git policy repository holding the policies (DIR, default ./policies)
  2. two pull requests through the CI proof gate (lilith prove, cvc5): one quietly
     escalates and is rejected with a counterexample; one is safe, proven and merged
  3. the release: sign the capsule and publish it to a git smart-HTTP server
  4. a fleet of three enforcers following the capsules branch; the first attaches
     the kernel programs and runs the proxy
  5. a real agent (Node, MCP SDK) started with \`lilith run\`: a clean read is
     allowed, a credential read taints the session, the exfiltration tool call is
     denied, a direct connection, a UDP datagram and a raw socket are refused
  6. a hot swap: a new capsule is released while the agent runs; its next call is
     decided by it
  7. a summary read back from the audit logs, and where to look next

  --policies DIR   policy directory to start the repository from (default ./policies)
  --work DIR       keep every artefact here: repository, proofs, capsules, audit logs,
                   status snapshots, outcome.json (default: a temporary directory,
                   removed at the end)
  --keep-running   leave the fleet, the servers and the agent's world running until
                   Ctrl-C, then clean up
  --no-kernel      do not attach kernel programs (and run no agent)

Needs git. The kernel steps need root and cgroup v2 (BPF-LSM is used where the
kernel allows, cgroup programs otherwise); the proof gate needs cvc5. What cannot
run here is skipped, and the demo says what and why. Everything it starts
(processes, cgroups, BPF pins, servers, temporary files) is removed at the end.
Exit: 0 the story ran; 1 a step did not turn out as it should; 2 an error.`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(
      argv,
      {
        policies: { type: 'string', default: 'policies' },
        work: { type: 'string' },
        'keep-running': { type: 'boolean', default: false },
        'no-kernel': { type: 'boolean', default: false },
      },
      usage,
    );
    const can = await preflight({ noKernel: values['no-kernel']! });
    const keepWork = values.work !== undefined;
    const work = keepWork ? resolve(values.work!) : await mkdtemp(join(tmpdir(), 'lilith-demo-'));
    await mkdir(join(work, 'gate'), { recursive: true });
    const cleanup = new Cleanup();
    if (!keepWork) cleanup.add('work directory', () => rm(work, { recursive: true, force: true }));
    const tag = `lilith-demo-${process.pid}`;
    const ctx: DemoContext = {
      policiesDir: resolve(values.policies!),
      work,
      tag,
      can,
      cleanup,
      outcome: emptyOutcome(),
      files: await startFilesServer(),
      exfil: await startExfilListener(),
      ports: { proxy: await freePort(), dns: await freePort(), admin: [await freePort(), await freePort(), await freePort()] },
      repo: join(work, 'repo'),
      cgroupRoot: `${tag}/agents`,
      pinRoot: `/sys/fs/bpf/${tag}`,
      keys: { key: '', trust: '' },
      gitUrl: '',
    };
    cleanup.add('MCP server', () => ctx.files.close());
    cleanup.add('exfiltration listener', () => ctx.exfil.close());
    let interrupted = false;
    const onSignal = () => {
      interrupted = true;
    };
    process.once('SIGINT', onSignal);
    let code = 0;
    try {
      code = await story(ctx, values['keep-running']!, () => interrupted);
    } finally {
      ctx.outcome.seconds = Math.round(elapsedSeconds() * 10) / 10;
      await writeFile(join(work, 'outcome.json'), JSON.stringify(ctx.outcome, null, 2) + '\n').catch(() => undefined);
      const failed = await cleanup.run();
      process.removeListener('SIGINT', onSignal);
      say('');
      say(
        failed.length
          ? `Cleaned up, except: ${failed.join('; ')}`
          : `Cleaned up: processes, cgroups, BPF pins, servers${keepWork ? `; artefacts kept in ${work}` : ', temporary files'}.`,
      );
    }
    return code;
  });
}

async function story(ctx: DemoContext, keepRunning: boolean, interrupted: () => boolean): Promise<number> {
  for (const [what, why] of [
    ['kernel enforcement', ctx.can.kernel],
    ['the agent', ctx.can.agent],
    ['the proof gate', ctx.can.gate],
  ] as const)
    if (why) say(`Note: ${what} will be skipped: ${why}.`);

  step(1, 'The policy repository');
  await createPolicyRepo(ctx);

  step(2, 'Two pull requests through the proof gate (what .github/workflows/policy-gate.yml runs)');
  const escalation = await gateAndMerge(ctx, ESCALATING_PR, { showDiff: true });
  const safe = await gateAndMerge(ctx, SAFE_PR, { showDiff: true });

  step(3, 'Release: sign and publish the capsule (what .github/workflows/release.yml runs)');
  await startCapsuleServer(ctx);
  const first = await release(ctx, safe.report);

  step(4, 'The fleet: three enforcers follow the capsules branch');
  const fleet: Enforcer[] = await startFleet(ctx, first.watermark);

  let failed = 0;
  if (ctx.can.agent) {
    step(5, 'A real agent under enforcement');
    skipped('the agent', ctx.can.agent);
    ctx.outcome.skipped.push({ what: 'the agent (step 5) and its part of step 6', why: ctx.can.agent });
    await hotSwap(ctx, fleet);
  } else {
    step(5, 'A real agent under enforcement (Node, MCP SDK, started with lilith run)');
    const agent = startAgent(ctx, fleet[0].socket, () => hotSwap(ctx, fleet));
    const exit = await agent.done;
    ctx.outcome.agent = { exit, spiffe_id: 'spiffe://corp.example/agents/coder', lines: agent.lines };
    if (exit !== 0) failed++;
  }
  if (ctx.outcome.swap === null) throw new Error('the hot swap did not run (the agent exited before it waited for it)');

  step(7, 'Summary');
  await summarize(ctx, fleet);
  if (escalation.exit === 0) failed++;
  whereNext(ctx, fleet, keepRunning);
  if (keepRunning) {
    say('Ctrl-C stops everything and cleans up.');
    while (!interrupted()) await new Promise((r) => setTimeout(r, 200));
  }
  return failed ? 1 : 0;
}
