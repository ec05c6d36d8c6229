// `lilith enforcer`: runs the enforcer daemon in the foreground (systemd, k8s, compose).
import { parseCommandArgs, runCommand } from '../args.js';
import {
  DaemonConfigError,
  loadPlugins,
  readSettingsFile,
  resolveDaemonConfig,
  startDaemon,
  type RawSettings,
} from '../../enforcer/daemon/index.js';
import { StartupStateError } from '../../enforcer/control/index.js';

export const summary = 'run the enforcer daemon: sync signed capsules from git/a directory and enforce them';

export const usage = `usage: lilith enforcer --trust FILE --state-dir DIR [--git URL] [--capsule-dir DIR] [options]

Capsule sources (at least one; with both, the higher valid watermark wins):
  --git URL              policy repository over smart HTTP(S)
  --branch NAME          capsule branch (default capsules)
  --capsule-file PATH    capsule path in the branch (default capsule.json)
  --capsule-dir DIR      watched directory of capsule files (air-gapped drops)

Trust and state:
  --trust FILE           trust file (keys + threshold)
  --state-dir DIR        anti-rollback state, last-good capsule, git clone, taint masks
  --reset-state          re-seed a missing or corrupt state file from the persisted capsule

Sync:
  --poll-min-ms N        minimum delay between polls (default 2000)
  --poll-max-ms N        maximum delay between polls (default 5000)
  --backoff-max-ms N     upper bound of the error backoff (default 60000)
  --timeout-ms N         deadline of every network step (default 10000)
  --max-capsule-bytes N  size cap of a capsule (default 16 MiB)

Enforcement:
  --engine fast|wasm     Cedar engine (default fast)
  --no-kernel            do not attach the kernel programs
  --no-dataplane         do not start the proxy (sync only)
  --workload-metadata-dir DIR  container metadata for k8s:/docker: selectors (default /run/lilith/workloads)

Admin:
  --admin-socket PATH    status socket (default /run/lilith/admin.sock)
  --admin-listen ADDR    loopback healthz/readyz/metrics (default: the capsule's proxy.admin_listen; "off")
  --audit FILE           audit log, JSON lines ("-" = stdout; default <state-dir>/audit.jsonl)
  --config FILE          JSON settings file (keys: trust, state_dir, git_url, git_branch, ...)

Every setting also reads LILITH_<NAME> from the environment (flags > env > file).
SIGHUP re-reads the trust file (key rotation) and syncs at once.
Exit: runs until SIGTERM/SIGINT (exit 0); 2 on a configuration or state error.`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(async () => {
    const { values } = parseCommandArgs(
      argv,
      {
        git: { type: 'string' },
        branch: { type: 'string' },
        'capsule-file': { type: 'string' },
        'capsule-dir': { type: 'string' },
        trust: { type: 'string' },
        'state-dir': { type: 'string' },
        'reset-state': { type: 'boolean' },
        'poll-min-ms': { type: 'string' },
        'poll-max-ms': { type: 'string' },
        'backoff-max-ms': { type: 'string' },
        'timeout-ms': { type: 'string' },
        'max-capsule-bytes': { type: 'string' },
        engine: { type: 'string' },
        'no-kernel': { type: 'boolean' },
        'no-dataplane': { type: 'boolean' },
        'workload-metadata-dir': { type: 'string' },
        'admin-socket': { type: 'string' },
        'admin-listen': { type: 'string' },
        audit: { type: 'string' },
        config: { type: 'string' },
      },
      usage,
    );
    const flags: RawSettings = {
      git_url: values.git,
      git_branch: values.branch,
      git_file: values['capsule-file'],
      capsule_dir: values['capsule-dir'],
      trust: values.trust,
      state_dir: values['state-dir'],
      reset_state: values['reset-state'] || undefined,
      poll_min_ms: values['poll-min-ms'],
      poll_max_ms: values['poll-max-ms'],
      backoff_max_ms: values['backoff-max-ms'],
      timeout_ms: values['timeout-ms'],
      max_capsule_bytes: values['max-capsule-bytes'],
      engine: values.engine,
      kernel: values['no-kernel'] ? false : undefined,
      dataplane: values['no-dataplane'] ? false : undefined,
      workload_metadata_dir: values['workload-metadata-dir'],
      admin_socket: values['admin-socket'],
      admin_listen: values['admin-listen'],
      audit: values.audit,
    };
    try {
      const file = values.config ? readSettingsFile(values.config) : {};
      const cfg = resolveDaemonConfig(flags, process.env, file, values.config);
      const daemon = await startDaemon(cfg, await loadPlugins(cfg));
      const onSignal = (sig: string) => {
        process.stderr.write(`lilith enforcer: ${sig}, stopping\n`);
        void daemon.stop();
      };
      process.once('SIGTERM', () => onSignal('SIGTERM'));
      process.once('SIGINT', () => onSignal('SIGINT'));
      // SIGHUP: re-read the trust file (after `lilith verify --write-trust` rotated it), then sync now.
      process.on('SIGHUP', () => {
        daemon.reloadTrust();
        for (const s of daemon.sources) if ('syncNow' in s) void (s as { syncNow(): Promise<unknown> }).syncNow();
      });
      await daemon.stopped;
      return 0;
    } catch (err) {
      if (err instanceof DaemonConfigError || err instanceof StartupStateError) {
        process.stderr.write(`lilith enforcer: ${err.message}\n`);
        return 2;
      }
      throw err;
    }
  });
}
