// Real peers for the kernel-netns scenario, on the guest's loopback: a DNS
// resolver answering fixed A records (what the DNS front forwards allowed
// names to), an HTTPS server with a fresh self-signed certificate, and an MCP
// server (the official SDK behind Streamable HTTP). Each records what reached
// it, so the scenario can show that denied traffic never did.
import dgram from 'node:dgram';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { hostMcpSessions } from '../cli/demo/mcp-session-host.js';
import { makeCert, rmCert } from '../testkit/tls-upstream.js';

export interface Peer {
  port: number;
  close(): Promise<void>;
}

/** Answers A queries for `answers` (others NXDOMAIN); `seen` lists every name asked. */
export async function startResolver(answers: Record<string, string>): Promise<Peer & { seen: string[] }> {
  const sock = dgram.createSocket('udp4');
  const seen: string[] = [];
  sock.on('message', (msg, rinfo) => {
    let off = 12;
    const labels: string[] = [];
    while (off < msg.length && msg[off]) {
      labels.push(msg.toString('latin1', off + 1, off + 1 + msg[off]!));
      off += msg[off]! + 1;
    }
    const name = labels.join('.');
    seen.push(name);
    const ip = answers[name];
    const header = Buffer.from(msg.subarray(0, 12));
    header.writeUInt16BE(0x8180 | (ip ? 0 : 3), 2);
    header.writeUInt16BE(ip ? 1 : 0, 6);
    header.writeUInt32BE(0, 8);
    const parts = [header, msg.subarray(12, off + 5)];
    if (ip) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip.split('.').map(Number)]));
    sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { port: sock.address().port, seen, close: () => new Promise<void>((r) => sock.close(() => r())) };
}

/** HTTPS for "localhost" answering `hello METHOD URL`; `connections()` counts accepted TCP connections. */
export async function startTlsServer(): Promise<Peer & { caPath: string; connections(): number }> {
  const cert = makeCert('localhost');
  const server = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
    req.resume();
    req.on('end', () => res.end(`hello ${req.method} ${req.url}`));
  });
  let accepted = 0;
  server.on('connection', () => accepted++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    caPath: cert.certPath,
    connections: () => accepted,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmCert(cert);
    },
  };
}

/** An MCP server with string-argument tools; `calls` lists the tools that reached it. */
export async function startMcp(
  name: string,
  tools: Record<string, { args: string[]; reply: string }>,
): Promise<Peer & { calls: string[] }> {
  const calls: string[] = [];
  const newServer = () => {
    const server = new McpServer({ name, version: '1.0.0' });
    for (const [tool, def] of Object.entries(tools)) {
      const shape: Record<string, z.ZodString> = {};
      for (const a of def.args) shape[a] = z.string();
      server.registerTool(tool, { description: tool, inputSchema: shape }, async () => {
        calls.push(tool);
        return { content: [{ type: 'text' as const, text: def.reply }] };
      });
    }
    return server;
  };
  const { port, close } = await hostMcpSessions(newServer);
  return { port, calls, close };
}
