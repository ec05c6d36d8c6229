// An isomorphic-git HTTP client with the limits a daemon needs: every request has a
// deadline (connect + whole response) and a cap on the bytes it will read, so a slow
// or hostile git server can neither hang the sync loop nor fill memory.
import http from 'node:http';
import https from 'node:https';

export interface GitHttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

export interface GitHttpResponse {
  url: string;
  method?: string;
  headers: Record<string, string>;
  body: AsyncIterableIterator<Uint8Array>;
  statusCode: number;
  statusMessage: string;
}

export class SyncNetworkError extends Error {
  constructor(
    readonly code: 'timeout' | 'too_large' | 'network',
    message: string,
  ) {
    super(message);
  }
}

export interface LimitedHttpOptions {
  /** Deadline for one request, from connect to the last response byte. */
  timeoutMs: number;
  /** Maximum response body bytes. */
  maxBytes: number;
  /** Called once per request (metrics, tests). */
  onRequest?: (url: string) => void;
}

async function collect(body: GitHttpRequest['body']): Promise<Buffer | undefined> {
  if (!body) return undefined;
  const parts: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array>) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

async function* once(buf: Buffer): AsyncIterableIterator<Uint8Array> {
  if (buf.length) yield buf;
}

/** Returns an isomorphic-git `http` plugin enforcing `opts` on every request. */
export function limitedHttp(opts: LimitedHttpOptions) {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const body = await collect(req.body);
      const url = new URL(req.url);
      const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
      if (!mod) throw new SyncNetworkError('network', `unsupported URL scheme ${url.protocol} (smart HTTP(S) only)`);
      opts.onRequest?.(req.url);
      return new Promise<GitHttpResponse>((resolve, reject) => {
        let settled = false;
        const fail = (err: Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          r.destroy();
          reject(err);
        };
        const timer = setTimeout(
          () =>
            fail(
              new SyncNetworkError(
                'timeout',
                `${req.method ?? 'GET'} ${url.origin}${url.pathname}: no complete response within ${opts.timeoutMs} ms`,
              ),
            ),
          opts.timeoutMs,
        );
        const headers: Record<string, string> = { ...(req.headers ?? {}) };
        if (body) headers['content-length'] = String(body.length);
        const r = mod.request(url, { method: req.method ?? 'GET', headers, agent: false }, (res) => {
          const declared = Number(res.headers['content-length'] ?? NaN);
          if (Number.isFinite(declared) && declared > opts.maxBytes) {
            fail(new SyncNetworkError('too_large', `${url.pathname}: response of ${declared} bytes exceeds the ${opts.maxBytes}-byte cap`));
            return;
          }
          const parts: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > opts.maxBytes) {
              fail(new SyncNetworkError('too_large', `${url.pathname}: response exceeds the ${opts.maxBytes}-byte cap`));
              return;
            }
            parts.push(chunk);
          });
          res.on('error', (err) => fail(new SyncNetworkError('network', `${url.origin}: ${err.message}`)));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            const outHeaders: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) outHeaders[k] = Array.isArray(v) ? v.join(', ') : v;
            resolve({
              url: req.url,
              method: req.method,
              headers: outHeaders,
              body: once(Buffer.concat(parts)),
              statusCode: res.statusCode ?? 0,
              statusMessage: res.statusMessage ?? '',
            });
          });
        });
        r.on('error', (err) => fail(new SyncNetworkError('network', `${url.origin}: ${err.message}`)));
        r.end(body);
      });
    },
  };
}
