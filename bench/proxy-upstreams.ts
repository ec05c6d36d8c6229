// The upstream half of `npm run bench -- proxy`: a plain HTTP server and an
// MCP-shaped JSON-RPC server (JSON responses), on loopback. Runs in its own
// process by default (see bench/child.ts), like a real server would.
import http from 'node:http';
import type net from 'node:net';
import { serveOverIpc, type Part } from './child.js';

export const MCP_BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'read_file', arguments: { path: '/workspace/README.md' } },
});
const MCP_RESULT = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { content: [{ type: 'text', text: 'hello from the file server' }] } });

export type UpstreamPorts = { http: number; mcp: number };

async function listen(server: http.Server): Promise<number> {
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

export async function startUpstreams(): Promise<Part<UpstreamPorts, null>> {
  const httpUp = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' }).end('hello world'));
  });
  const mcpUp = http.createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(MCP_RESULT)) }).end(MCP_RESULT),
    );
  });
  const ready = { http: await listen(httpUp), mcp: await listen(mcpUp) };
  return {
    ready,
    stop: async () => {
      for (const s of [httpUp, mcpUp]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
      return null;
    },
  };
}

if (process.argv[2] === '--serve-ipc') await serveOverIpc(startUpstreams);
