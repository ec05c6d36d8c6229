// The admin socket's client: how the CLI, the demo and tests talk to a running
// enforcer. Kept apart from the daemon so that `lilith run`, `status` and `state`
// start without loading the daemon (its dataplane, Cedar engines and git client).
import http from 'node:http';

/** Where the enforcer listens for admin requests unless told otherwise. */
export const DEFAULT_ADMIN_SOCKET = '/run/lilith/admin.sock';

/** One request to the admin socket; the whole answer is read, within `timeoutMs`. */
function adminRequest(socketPath: string, path: string, timeoutMs: number, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-type': 'application/json', 'content-length': body.length } : undefined;
    const req = http.request({ socketPath, path, method: body ? 'POST' : 'GET', timeout: timeoutMs, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** POSTs JSON to the admin socket. */
export function adminPost(socketPath: string, path: string, body: unknown, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return adminRequest(socketPath, path, timeoutMs, Buffer.from(JSON.stringify(body)));
}

/** GETs a path from the admin socket (used by `lilith status` and tests). */
export function adminGet(socketPath: string, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return adminRequest(socketPath, path, timeoutMs);
}
