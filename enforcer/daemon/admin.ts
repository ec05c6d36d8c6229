// The admin API over HTTP: status, health, readiness and metrics (the answers come
// from admin-routes.ts). Served on a unix socket (root-only, what `lilith status`
// talks to) and optionally on a loopback TCP address (proxy.admin_listen) for probes
// and Prometheus. Read-only: nothing here can change policy, so exposing it on
// loopback cannot loosen enforcement.
import { chmod, mkdir, unlink } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';
import { parseHostPort } from '../../net/address.js';

export interface AdminHandlers {
  status(): unknown;
  /** Null when ready; otherwise why not. */
  notReady(): string | null;
  /** Prometheus exposition text for /metrics. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /**
   * Socket-only routes (root-only socket): e.g. GET /v1/config, POST /v1/agents
   * (attestation for `lilith run`), POST /authorize (what-if decision). None of them
   * changes policy or taint.
   */
  local?: {
    get?: Record<string, () => JsonReply>;
    post?: Record<string, (body: unknown) => JsonReply | Promise<JsonReply>>;
  };
}

export interface JsonReply {
  status: number;
  json: unknown;
}

const MAX_AUTHORIZE_BODY = 64 * 1024;

export interface AdminServer {
  /** Address actually bound, e.g. "127.0.0.1:7891" (TCP only). */
  readonly address: string;
  close(): Promise<void>;
}

function handler(h: AdminHandlers, withLocal: boolean): http.RequestListener {
  return (req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const path = (req.url ?? '/').split('?')[0];
    const post = withLocal ? h.local?.post?.[path] : undefined;
    const getLocal = withLocal ? h.local?.get?.[path] : undefined;
    const reply = (r: JsonReply) => send(r.status, 'application/json', JSON.stringify(r.json) + '\n');
    if (getLocal && req.method === 'GET') {
      try {
        return reply(getLocal());
      } catch (err) {
        return reply({ status: 500, json: { error: (err as Error).message } });
      }
    }
    if (post && req.method === 'POST') {
      const parts: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_AUTHORIZE_BODY) {
          send(413, 'text/plain', `request body over ${MAX_AUTHORIZE_BODY} bytes\n`);
          req.destroy();
        } else parts.push(c);
      });
      req.on('end', () => {
        if (size > MAX_AUTHORIZE_BODY) return;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(parts).toString('utf8'));
        } catch (err) {
          return reply({ status: 400, json: { error: `body is not JSON: ${(err as Error).message}` } });
        }
        Promise.resolve()
          .then(() => post(body))
          .then(reply, (err: Error) => reply({ status: 400, json: { error: err.message } }));
      });
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    try {
      switch (path) {
        case '/status':
          return send(200, 'application/json', JSON.stringify(h.status(), null, 2) + '\n');
        case '/healthz':
          // Alive means the event loop answers; a failed fetch is not a reason to restart.
          return send(200, 'text/plain', 'ok\n');
        case '/readyz': {
          const why = h.notReady();
          return why === null ? send(200, 'text/plain', 'ready\n') : send(503, 'text/plain', `not ready: ${why}\n`);
        }
        case '/metrics':
          h.metrics().then(
            (m) => send(200, m.contentType, m.text),
            (err: Error) => send(500, 'text/plain', `metrics: ${err.message}\n`),
          );
          return;
        default:
          return send(404, 'text/plain', 'not found (try /status, /healthz, /readyz, /metrics)\n');
      }
    } catch (err) {
      return send(500, 'text/plain', `${(err as Error).message}\n`);
    }
  };
}

/** Listens on a unix socket; a stale socket file (no one answering) is replaced. */
export async function listenAdminSocket(path: string, h: AdminHandlers): Promise<AdminServer> {
  await mkdir(dirname(path), { recursive: true });
  if (await socketAnswers(path)) throw new Error(`admin socket ${path} is in use by another running enforcer`);
  await unlink(path).catch(() => undefined);
  const server = http.createServer(handler(h, true));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return {
    address: path,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        unlink(path).catch(() => undefined);
      }),
  };
}

/** Listens on "host:port" (loopback expected). */
export async function listenAdminTcp(addr: string, h: AdminHandlers): Promise<AdminServer> {
  const { host, port } = parseHostPort(addr, 'admin address');
  const server = http.createServer(handler(h, false));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as net.AddressInfo;
  return {
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
