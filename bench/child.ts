// Benchmark parts that run as their own Node process (as they do in
// deployment), driven over execa's IPC channel with one small protocol:
//   parent → options          child → { ready }
//   parent → 'stop'           child → { stopped } and exits.
// The same `start` function also runs in-process, so a bench can compare both.
import { execaNode, getOneMessage, sendMessage } from 'execa';

export interface Part<R, S> {
  ready: R;
  stop(): Promise<S>;
}

type Json = Parameters<typeof sendMessage>[0];

/** Child side: call at module top level, guarded by the `--serve-ipc` argument. */
export async function serveOverIpc<O, R, S>(start: (options: O) => Promise<Part<R, S>>): Promise<void> {
  const options = (await getOneMessage()) as unknown as O;
  const part = await start(options);
  await sendMessage({ ready: part.ready } as unknown as Json);
  await getOneMessage({ filter: (m) => m === 'stop' });
  await sendMessage({ stopped: (await part.stop()) ?? null } as unknown as Json);
}

/** Parent side: starts `modulePath` (a compiled bench module) with `--serve-ipc` and hands it `options`. */
export async function startChild<O, R, S>(modulePath: string, options: O): Promise<Part<R, S>> {
  const child = execaNode(modulePath, ['--serve-ipc'], { ipc: true, serialization: 'json', stdout: 'inherit', stderr: 'inherit' });
  const failed = child.then(
    () => Promise.reject(new Error(`${modulePath} exited before it was ready`)),
    (err: Error) => Promise.reject(err),
  );
  failed.catch(() => undefined);
  await child.sendMessage(options as never);
  const m = (await Promise.race([child.getOneMessage(), failed])) as unknown as { ready: R };
  return {
    ready: m.ready,
    stop: async () => {
      await child.sendMessage('stop');
      const done = (await child.getOneMessage()) as unknown as { stopped: S };
      await child;
      return done.stopped;
    },
  };
}
