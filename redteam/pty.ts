// Runs a command on a real pseudo-terminal, as an interactive shell would: the
// pty is the controlling terminal of a session whose leader waits for the
// command and then reads one line from the terminal, the way the invoking
// shell reads its next command. Whatever the command pushed into the
// terminal's input queue (TIOCSTI) is what that shell would have run.
import { execFile } from 'node:child_process';

// python3's pty.fork: the child is a session leader with the pty slave as its
// controlling terminal; the parent drains the master until the child is gone.
const HARNESS = `
import json, os, pty, select, sys
pid, fd = pty.fork()
if pid == 0:
    rc = os.spawnvp(os.P_WAIT, sys.argv[1], sys.argv[1:])
    ready, _, _ = select.select([0], [], [], 0.5)
    typed = os.read(0, 4096).decode(errors='replace') if ready else ''
    print('PTY-RESULT ' + json.dumps({'exit': rc, 'typed': typed}), flush=True)
    os._exit(0)
out = b''
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
`;

export interface PtyRun {
  /** The command's exit status (negative: killed by that signal). */
  exit: number;
  /** What the session leader read from the terminal after the command: injected input, or ''. */
  typed: string;
  /** Everything written to the terminal. */
  output: string;
}

export function runInPty(command: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 30_000): Promise<PtyRun> {
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', HARNESS, ...command], { env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout) => {
      const m = /PTY-RESULT (\{.*\})/.exec(stdout);
      if (!m) return reject(new Error(`no result from the pty harness (${err?.message ?? 'exit 0'}): ${stdout.slice(-500)}`));
      const r = JSON.parse(m[1]) as { exit: number; typed: string };
      resolve({ exit: r.exit, typed: r.typed, output: stdout });
    });
  });
}
