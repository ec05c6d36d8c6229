// A real MCP server for tests: the official SDK's McpServer behind its
// StreamableHTTPServerTransport (stateful sessions, hosted like the demo's server),
// or behind the older HTTP+SSE transport, on a node http server.
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { closeSessions, hostMcpSessions } from '../../cli/demo/mcp-session-host.js';
import { listen } from './helpers.js';

export type ToolImpl = (args: Record<string, string>) => string;
type ToolDefs = Record<string, { args: string[]; impl: ToolImpl; notify?: string }>;

export interface TestMcpServer {
  port: number;
  calls: Array<{ tool: string; args: Record<string, unknown> }>;
  /** Raw POST bodies as they reached the server (streamable HTTP server only). */
  bodies: string[];
  close(): Promise<void>;
}

/** Registers `tools` (string arguments) on `server`, recording each call that reaches it. */
function addTools(server: McpServer, tools: ToolDefs, calls: TestMcpServer['calls'], describe: (tool: string) => string): McpServer {
  for (const [tool, def] of Object.entries(tools)) {
    const shape: Record<string, z.ZodString> = {};
    for (const a of def.args) shape[a] = z.string();
    server.registerTool(tool, { description: describe(tool), inputSchema: shape }, async (args: Record<string, string>, extra) => {
      calls.push({ tool, args });
      // `notify`: a logging notification on the call's event stream before the result.
      if (def.notify !== undefined)
        await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: def.notify } });
      return { content: [{ type: 'text' as const, text: def.impl(args) }] };
    });
  }
  return server;
}

export async function startMcpServer(name: string, tools: ToolDefs, opts: { json?: boolean } = {}): Promise<TestMcpServer> {
  const calls: TestMcpServer['calls'] = [];
  const bodies: string[] = [];
  const newServer = () =>
    addTools(new McpServer({ name, version: '1.0.0' }, { capabilities: { logging: {} } }), tools, calls, (t) => `${t} (test)`);
  // No body bound of its own: the tests probe the proxy's bounds, not this server's.
  const { port, close } = await hostMcpSessions(newServer, {
    json: opts.json ?? false,
    maxBody: Number.POSITIVE_INFINITY,
    onBody: (text) => void bodies.push(text),
  });
  return { port, calls, bodies, close };
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
      await addTools(new McpServer({ name, version: '1.0.0' }), tools, calls, (tool) => tool).connect(t);
      return;
    }
    const sid = new URL(req.url ?? '/', 'http://x').searchParams.get('sessionId') ?? '';
    const t = transports.get(sid);
    if (req.method === 'POST' && t) return void (await t.handlePostMessage(req, res));
    res.writeHead(404).end();
  });
  const port = await listen(httpServer);
  return { port, calls, bodies, close: () => closeSessions(httpServer, transports.values()) };
}
