// The capsule sources the settings ask for: a git branch over smart HTTP and/or a
// watched directory. With both, the activator keeps the higher valid watermark.
import { join } from 'node:path';
import { controlMetrics, DirSource, GitSource, type CapsuleSource } from '../control/index.js';
import type { DaemonConfig } from './config.js';

export function buildSources(cfg: DaemonConfig, log: (line: string) => void): CapsuleSource[] {
  const sources: CapsuleSource[] = [];
  if (cfg.git) {
    sources.push(
      new GitSource({
        url: cfg.git.url,
        branch: cfg.git.branch,
        file: cfg.git.file,
        cloneDir: join(cfg.stateDir, 'git'),
        pollMinMs: cfg.pollMinMs,
        pollMaxMs: cfg.pollMaxMs,
        backoffMaxMs: cfg.backoffMaxMs,
        timeoutMs: cfg.timeoutMs,
        maxCapsuleBytes: cfg.maxCapsuleBytes,
        onRequest: () => controlMetrics.gitRequests.inc(),
        onOutcome: (o) => {
          controlMetrics.syncAttempts.inc({ kind: 'git', result: o.result });
          if (o.result === 'error') log(`git sync: ${o.error}`);
          else controlMetrics.lastSyncSuccess.set({ kind: 'git' }, Date.now() / 1000);
        },
      }),
    );
  }
  if (cfg.capsuleDir) sources.push(new DirSource({ dir: cfg.capsuleDir, maxCapsuleBytes: cfg.maxCapsuleBytes }));
  return sources;
}
