// Hosts an MCP server over the SDK's Streamable HTTP transport with stateful
// sessions on a node http server: one transport per session, created by an
// initialize request; anything else without a known session gets a JSON-RPC error.
// The demo's "files" server and the tests' MCP servers both stand on it.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';

/** Request bodies above this are refused (413) before they are parsed. */
export const MAX_MCP_BODY = 1 << 20;

export interface McpSessionHostOptions {
  /** Address to listen on (a free port is chosen). */
  host?: string;
  /** Answer with plain JSON instead of an event stream. */
  json?: boolean;
  /** Bound of one request body (default MAX_MCP_BODY). */
  maxBody?: number;
  /** Sees every non-empty request body as text, before it is parsed. */
  onBody?: (text: string) => void;
}

export interface McpSessionHost {
  port: number;
  close(): Promise<void>;
}

/** Serves `newServer()` (one per session) over Streamable HTTP. */
export async function hostMcpSessions(
  newServer: () => { connect(transport: Transport): Promise<void> },
  opts: McpSessionHostOptions = {},
): Promise<McpSessionHost> {
  const maxBody = opts.maxBody ?? MAX_MCP_BODY;
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const httpServer = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > maxBody) return void res.writeHead(413).end();
      chunks.push(c as Buffer);
    }
    let body: unknown;
    try {
      if (chunks.length) {
        const text = Buffer.concat(chunks).toString('utf8');
        opts.onBody?.(text);
        body = JSON.parse(text);
      }
    } catch {
      return void res.writeHead(400).end();
    }
    const sid = req.headers['mcp-session-id'] as string | undefined;
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport && req.method === 'POST' && isInitializeRequest(body)) {
      const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: opts.json ?? false,
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      t.onclose = () => t.sessionId && transports.delete(t.sessionId);
      await newServer().connect(t);
      transport = t;
    }
    if (!transport) {
      res
        .writeHead(400, { 'content-type': 'application/json' })
        .end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'no session' } }));
      return;
    }
    await transport.handleRequest(req, res, body);
  });
  const port = await listenOn(httpServer, opts.host ?? '127.0.0.1');
  return { port, close: () => closeSessions(httpServer, transports.values()) };
}

/** Closes every open session transport, then the http server (dropping its connections). */
export async function closeSessions(httpServer: http.Server, transports: Iterable<{ close(): Promise<void> }>): Promise<void> {
  for (const t of transports) await t.close().catch(() => undefined);
  httpServer.closeAllConnections();
  await new Promise<void>((r) => httpServer.close(() => r()));
}

/** Listens on a free port of `host`; resolves with the port. */
export function listenOn(server: http.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}
