// A real git smart-HTTP server on loopback, for the demo (`npm start`), the fleet
// benchmark and tests: git's own `git http-backend` run as a CGI program behind a
// small node:http server on 127.0.0.1. Pushes are enabled (http.receivepack) and
// every repository under the root is exported.
import { spawn, execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface GitServer {
  /** e.g. "http://127.0.0.1:41234" */
  readonly baseUrl: string;
  /** Directory holding the bare repositories (GIT_PROJECT_ROOT). */
  readonly root: string;
  /** URL of repository `name` (e.g. "policies.git"). */
  repoUrl(name: string): string;
  /**
   * Creates an empty bare repository under root (pushes enabled, HEAD → refs/heads/main);
   * returns its path. Note: isomorphic-git's fetch/clone fail ("Could not find HEAD") while
   * the remote HEAD names a branch that does not exist yet, so push `main` before fetching.
   */
  createBareRepo(name: string): Promise<string>;
  /** HTTP requests served since the server was created. */
  requestCount(): number;
  /** Stops listening and drops open connections; start() brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** stop() and remove the root when the server created it (also done at process exit). */
  dispose(): Promise<void>;
}

export interface GitServerOptions {
  /** Use this directory as the project root (not removed on stop). Default: a fresh temp dir, removed by stop(). */
  root?: string;
}

let backendPath: string | undefined;

async function findBackend(): Promise<string> {
  if (!backendPath) {
    const { stdout } = await run('git', ['--exec-path']);
    backendPath = join(stdout.trim(), 'git-http-backend');
  }
  return backendPath;
}

/** Splits the CGI header block from the body and relays both to the HTTP response. */
function relayCgi(child: ReturnType<typeof spawn>, res: ServerResponse): void {
  let head = Buffer.alloc(0);
  let headersDone = false;
  child.stdout!.on('data', (chunk: Buffer) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sepLen = 4;
    if (end < 0) {
      end = head.indexOf('\n\n');
      sepLen = 2;
    }
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const name = line.slice(0, i).trim();
      const value = line.slice(i + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
      else res.setHeader(name, value);
    }
    res.writeHead(status);
    const rest = head.subarray(end + sepLen);
    if (rest.length) res.write(rest);
  });
  child.stdout!.on('end', () => {
    if (!headersDone && !res.headersSent) res.writeHead(502);
    res.end();
  });
}

export async function startGitServer(opts: GitServerOptions = {}): Promise<GitServer> {
  const ownsRoot = opts.root === undefined;
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), 'lilith-git-server-')));
  await mkdir(root, { recursive: true });
  const backend = await findBackend();
  // stop() keeps the repositories so start() can serve them again; a root we
  // created is removed by dispose() or, failing that, when the process exits.
  const removeRootAtExit = () => rmSync(root, { recursive: true, force: true });
  if (ownsRoot) process.on('exit', removeRootAtExit);
  let requests = 0;
  const children = new Set<ReturnType<typeof spawn>>();

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    requests++;
    try {
      serve(req, res);
    } catch (err) {
      // A malformed request must not take the test process down.
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`bad request: ${(err as Error).message}\n`);
    }
  };

  const serve = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: root,
      GIT_HTTP_EXPORT_ALL: '1',
      // Enable pushes for every repository, including ones not made by createBareRepo.
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.receivepack',
      GIT_CONFIG_VALUE_0: 'true',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      SERVER_SOFTWARE: 'lilith-test-git-server',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.replace(/^\?/, ''),
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      REMOTE_USER: 'test',
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      HTTP_CONTENT_ENCODING: (req.headers['content-encoding'] as string | undefined) ?? '',
      GIT_PROTOCOL: (req.headers['git-protocol'] as string | undefined) ?? '',
    };
    if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
    const child = spawn(backend, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.on('close', () => children.delete(child));
    child.on('error', () => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    child.stderr!.resume();
    child.stdin!.on('error', () => {}); // backend may exit before reading the whole request
    req.pipe(child.stdin!);
    relayCgi(child, res);
  };

  let server: Server | null = null;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(handle);
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        s.off('error', reject);
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });

  await listen();
  const baseUrl = `http://127.0.0.1:${port}`;

  const api: GitServer = {
    baseUrl,
    root,
    repoUrl: (name) => `${baseUrl}/${name}`,
    async createBareRepo(name) {
      const path = join(root, name);
      await run('git', ['init', '--quiet', '--bare', '--initial-branch=main', path]);
      await run('git', ['-C', path, 'config', 'http.receivepack', 'true']);
      return path;
    },
    requestCount: () => requests,
    async start() {
      if (server) return;
      await listen();
    },
    async stop() {
      const s = server;
      server = null;
      if (s) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
      for (const c of children) c.kill('SIGKILL');
    },
    async dispose() {
      await api.stop();
      if (ownsRoot) {
        process.off('exit', removeRootAtExit);
        await rm(root, { recursive: true, force: true });
      }
    },
  };
  return api;
}
