// Step 1: the policy repository. The bundled policies in a fresh git repository,
// with lilith.json pointed at this machine: the demo's ports, its own cgroup
// subtree, the MCP server it starts, and an agent registration whose filesystem
// lets Node and this project be read.
import { cp, mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LilithConfig } from '../../capsule/config.js';
import { ESCAPE_PROBE_BIN, landlockSupport } from '../../confine/native.js';
import type { DemoContext } from './context.js';
import { detail, say } from './narrate.js';
import { ROOT } from './paths.js';
import { git } from './shell.js';

export const AGENT_SPIFFE_ID = 'spiffe://corp.example/agents/coder';

/** The bundled lilith.json, for this machine and this run. */
export async function demoConfig(config: LilithConfig, ctx: DemoContext, workspace: string): Promise<LilithConfig> {
  const readable = ['/usr', '/lib', '/etc', '/proc', ROOT, await realpath(join(ROOT, 'node_modules')), dirname(process.execPath)];
  const proxy: LilithConfig['proxy'] = {
    ...config.proxy,
    listen: `127.0.0.1:${ctx.ports.proxy}`,
    dns_listen: `127.0.0.1:${ctx.ports.dns}`,
    admin_listen: `127.0.0.1:${ctx.ports.admin[0]}`,
  };
  delete proxy.listen6;
  return {
    ...config,
    proxy,
    kernel: {
      ...config.kernel,
      cgroup_root: ctx.cgroupRoot,
      // Under BPF-LSM only allowlisted binaries run in the agent: Node and the probe it starts.
      exec_allowlist: [...new Set([...(config.kernel.exec_allowlist ?? []), process.execPath, ESCAPE_PROBE_BIN])],
    },
    upstreams: { files: { address: `127.0.0.1:${ctx.files.port}`, kind: 'mcp' } },
    registrations: [
      {
        spiffe_id: AGENT_SPIFFE_ID,
        selectors: [`cgroup:/${ctx.cgroupRoot}/coder`],
        groups: ['coding'],
        profile: 'standard',
        jit: true,
        filesystem: { read_only: [...new Set(readable)], read_write: [workspace] },
        // A Landlock layer this kernel lacks: run without it (every run warns) rather than not at all.
        allow_degraded: landlockSupport().missing.filter((layer) => layer !== 'seccomp'),
      },
      ...config.registrations
        .filter((r) => r.spiffe_id.endsWith('/reader'))
        .map((r) => ({ ...r, selectors: [`cgroup:/${ctx.cgroupRoot}/reader`] })),
    ],
  };
}

export async function createPolicyRepo(ctx: DemoContext): Promise<void> {
  const policies = join(ctx.repo, 'policies');
  const workspace = join(ctx.work, 'workspace');
  await mkdir(workspace, { recursive: true });
  await mkdir(ctx.repo, { recursive: true });
  await cp(ctx.policiesDir, policies, { recursive: true });
  const configPath = join(policies, 'lilith.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as LilithConfig;
  await writeFile(configPath, JSON.stringify(await demoConfig(config, ctx, workspace), null, 2) + '\n');
  await git(ctx.repo, ['init', '-q', '-b', 'main']);
  await git(ctx.repo, ['add', '-A']);
  await git(ctx.repo, ['commit', '-q', '-m', 'Bundled policies (lilith.json pointed at this machine)']);
  const files = (await git(ctx.repo, ['ls-files'])).split('\n');
  say(`   ${ctx.repo} (git, branch main): ${files.length} files`);
  detail(files.map((f) => `  ${f}`).join('\n'));
  say(
    `   lilith.json: proxy ${ctx.ports.proxy}, agents under cgroup /${ctx.cgroupRoot}, MCP server "files" at 127.0.0.1:${ctx.files.port}`,
  );
}
