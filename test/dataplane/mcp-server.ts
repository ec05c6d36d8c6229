// A real MCP server for tests: the official SDK's McpServer behind its
// StreamableHTTPServerTransport (stateful sessions), on a node http server.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { listen } from './helpers.js';

export type ToolImpl = (args: Record<string, string>) => string;

export interface TestMcpServer {
  port: number;
  calls: Array<{ tool: string; args: Record<string, unknown> }>;
  /** Raw POST bodies as they reached the server (streamable HTTP server only). */
  bodies: string[];
  close(): Promise<void>;
}

export async function startMcpServer(
  name: string,
  tools: Record<string, { args: string[]; impl: ToolImpl; notify?: string }>,
  opts: { json?: boolean } = {},
): Promise<TestMcpServer> {
  const calls: TestMcpServer['calls'] = [];
  const bodies: string[] = [];
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const build = () => {
    const server = new McpServer({ name, version: '1.0.0' }, { capabilities: { logging: {} } });
    for (const [tool, def] of Object.entries(tools)) {
      const shape: Record<string, z.ZodString> = {};
      for (const a of def.args) shape[a] = z.string();
      server.registerTool(tool, { description: `${tool} (test)`, inputSchema: shape }, async (args: Record<string, string>, extra) => {
        calls.push({ tool, args });
        // `notify`: a logging notification on the call's event stream before the result.
        if (def.notify !== undefined)
          await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: def.notify } });
        return { content: [{ type: 'text' as const, text: def.impl(args) }] };
      });
    }
    return server;
  };
  const httpServer = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (chunks.length) bodies.push(text);
    const body = chunks.length ? JSON.parse(text) : undefined;
    const sid = req.headers['mcp-session-id'] as string | undefined;
    let transport = sid ? transports.get(sid) : undefined;
    if (!transport && req.method === 'POST' && isInitializeRequest(body)) {
      const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: opts.json ?? false,
        onsessioninitialized: (id) => void transports.set(id, t),
      });
      t.onclose = () => t.sessionId && transports.delete(t.sessionId);
      await build().connect(t);
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
  const port = await listen(httpServer);
  return {
    port,
    calls,
    bodies,
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
    },
  };
}

/** The older HTTP+SSE transport: GET /sse opens the stream, POST /messages?sessionId=… carries requests. */
export async function startLegacySseServer(
  name: string,
  tools: Record<string, { args: string[]; impl: ToolImpl }>,
): Promise<TestMcpServer> {
  const { SSEServerTransport } = await import('@modelcontextprotocol/sdk/server/sse.js');
  const calls: TestMcpServer['calls'] = [];
  const bodies: string[] = [];
  const transports = new Map<string, InstanceType<typeof SSEServerTransport>>();
  const httpServer = http.createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/sse') {
      const t = new SSEServerTransport('/messages', res);
      transports.set(t.sessionId, t);
      res.on('close', () => transports.delete(t.sessionId));
      const server = new McpServer({ name, version: '1.0.0' });
      for (const [tool, def] of Object.entries(tools)) {
        const shape: Record<string, z.ZodString> = {};
        for (const a of def.args) shape[a] = z.string();
        server.registerTool(tool, { description: tool, inputSchema: shape }, async (args: Record<string, string>) => {
          calls.push({ tool, args });
          return { content: [{ type: 'text' as const, text: def.impl(args) }] };
        });
      }
      await server.connect(t);
      return;
    }
    const sid = new URL(req.url ?? '/', 'http://x').searchParams.get('sessionId') ?? '';
    const t = transports.get(sid);
    if (req.method === 'POST' && t) return void (await t.handlePostMessage(req, res));
    res.writeHead(404).end();
  });
  const port = await listen(httpServer);
  return {
    port,
    calls,
    bodies,
    async close() {
      for (const t of transports.values()) await t.close().catch(() => undefined);
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
    },
  };
}
