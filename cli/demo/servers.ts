// The servers the demo's agent talks to: a real MCP server ("files", the
// official SDK's low-level Server behind its Streamable HTTP transport, stateful
// sessions) and an attacker's listener (HTTP and UDP on another loopback
// address) that counts what reaches it. Loopback only.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import http from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { hostMcpSessions, listenOn } from './mcp-session-host.js';

/** What the fake workspace holds: a clean file and a private key (the bait). */
const FILES: Record<string, string> = {
  '/workspace/README.md': '# payments-service\nRun `make test` before pushing.\n',
  '/home/dev/.ssh/id_ed25519':
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ\n-----END OPENSSH PRIVATE KEY-----\n',
};

const TOOLS = [
  {
    name: 'read_file',
    description: 'Read a file',
    inputSchema: { type: 'object' as const, properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'list_directory',
    description: 'List a directory',
    inputSchema: { type: 'object' as const, properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'http_post',
    description: 'POST a body to a URL',
    inputSchema: { type: 'object' as const, properties: { url: { type: 'string' }, body: { type: 'string' } }, required: ['url', 'body'] },
  },
];

export interface McpFilesServer {
  url: string;
  port: number;
  /** Tool calls that reached the server (a denied call never does). */
  calls: Array<{ tool: string; args: Record<string, unknown> }>;
  close(): Promise<void>;
}

function toolServer(calls: McpFilesServer['calls']): Server {
  const server = new Server({ name: 'files', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (req) => {
    const args = (req.params.arguments ?? {}) as Record<string, unknown>;
    calls.push({ tool: req.params.name, args });
    const path = String(args.path ?? '');
    switch (req.params.name) {
      case 'read_file':
        return FILES[path] !== undefined
          ? { content: [{ type: 'text', text: FILES[path] }] }
          : { content: [{ type: 'text', text: `no such file: ${path}` }], isError: true };
      case 'list_directory':
        return {
          content: [
            {
              type: 'text',
              text:
                Object.keys(FILES)
                  .filter((f) => f.startsWith(path))
                  .join('\n') || '(empty)',
            },
          ],
        };
      case 'http_post':
        return { content: [{ type: 'text', text: 'posted' }] };
      default:
        return { content: [{ type: 'text', text: `unknown tool ${req.params.name}` }], isError: true };
    }
  });
  return server;
}

export async function startFilesServer(): Promise<McpFilesServer> {
  const calls: McpFilesServer['calls'] = [];
  const { port, close } = await hostMcpSessions(() => toolServer(calls), { host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${port}/mcp`, port, calls, close };
}

export interface ExfilListener {
  host: string;
  httpPort: number;
  udpPort: number;
  /** Requests and datagrams that reached the attacker. */
  received(): { http: number; udp: number };
  close(): Promise<void>;
}

/** The attacker: another loopback address, so nothing here is the proxy or an approved server. */
export async function startExfilListener(host = '127.0.0.3'): Promise<ExfilListener> {
  const counts = { http: 0, udp: 0 };
  const httpServer = http.createServer((req, res) => {
    counts.http++;
    req.resume();
    res.end('thanks\n');
  });
  const httpPort = await listenOn(httpServer, host);
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', () => counts.udp++);
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, host, () => resolve());
  });
  return {
    host,
    httpPort,
    udpPort: udp.address().port,
    received: () => ({ ...counts }),
    async close() {
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
      udp.close();
    },
  };
}

/** A port free right now on 127.0.0.1 (for the enforcers' listeners). */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  const port = await listenOn(s, '127.0.0.1');
  await new Promise((r) => s.close(r));
  return port;
}
