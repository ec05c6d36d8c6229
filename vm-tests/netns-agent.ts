// The namespaced agent of the kernel-netns scenario: one Node process (each
// Node start costs seconds under TCG) that runs inside the agent's network
// namespace and cgroup and talks to the REAL destinations — only the kernel
// sends it to the node proxy. It resolves an allowed and a denied name over
// UDP, opens TLS with an allowed and a denied SNI, and calls an allowed and a
// denied MCP tool with the official SDK client, then prints one JSON line of
// what it saw. Usage: node netns-agent.js '<Spec as JSON>'.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

export interface NetnsAgentSpec {
  /** Resolver addresses (IPv4, port 53) and the names to ask them for. */
  dns: Array<{ server: string; name: string }>;
  /** TLS server (IPv4:port), the CA file that verifies it, and SNIs to open it with. */
  tls: { address: string; caPath: string; snis: string[] };
  /** MCP endpoint, and the tool calls in order. */
  mcp: { url: string; calls: Array<{ tool: string; args: Record<string, string> }> };
}

export interface NetnsAgentReport {
  pid: number;
  dns: Array<{ name: string; rcode?: number; answers?: number; error?: string }>;
  tls: Array<{ sni: string; authorized?: boolean; reply?: string; error?: string }>;
  mcp: Array<{ tool: string; text?: string; error?: string }>;
  /** Milliseconds: process start to loaded (imports), then each part. */
  ms: { loaded: number; dns: number; tls: number; mcp: number };
}

const STEP_MS = 15_000;

/** A DNS query (RD set) for `name`, type A. */
function query(id: number, name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

function resolve(server: string, name: string): Promise<NetnsAgentReport['dns'][number]> {
  return new Promise((done) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      done({ name, error: 'timeout' });
    }, STEP_MS);
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      s.close();
      done({ name, error: e.code ?? e.message });
    });
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      done({ name, rcode: m.readUInt16BE(2) & 0xf, answers: m.readUInt16BE(6) });
    });
    s.send(query(0x4c4c, name), 53, server);
  });
}

function openTls(address: string, ca: Buffer, sni: string): Promise<NetnsAgentReport['tls'][number]> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((done) => {
    let reply = '';
    let authorized: boolean | undefined;
    let error: string | undefined;
    const s = tls.connect({ host, port: Number(port), servername: sni, ca }, () => {
      authorized = s.authorized;
      s.end(`GET /hello HTTP/1.1\r\nHost: ${sni}\r\nConnection: close\r\n\r\n`);
    });
    const t = setTimeout(() => {
      error ??= 'timeout';
      s.destroy();
    }, STEP_MS);
    s.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
    s.on('close', () => {
      clearTimeout(t);
      done({ sni, authorized, reply: reply.split('\r\n\r\n').slice(1).join('') || undefined, error });
    });
  });
}

async function mcp(url: string, calls: NetnsAgentSpec['mcp']['calls']): Promise<NetnsAgentReport['mcp']> {
  const out: NetnsAgentReport['mcp'] = [];
  const client = new Client({ name: 'netns-agent', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  for (const { tool, args } of calls) {
    try {
      const r = (await client.callTool({ name: tool, arguments: args }, undefined, { timeout: STEP_MS })) as {
        content: Array<{ text: string }>;
      };
      out.push({ tool, text: r.content[0]?.text });
    } catch (err) {
      out.push({ tool, error: (err as Error).message });
    }
  }
  await client.close();
  return out;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as NetnsAgentSpec;
const ms = { loaded: Math.round(process.uptime() * 1000), dns: 0, tls: 0, mcp: 0 };
const report: NetnsAgentReport = { pid: process.pid, dns: [], tls: [], mcp: [], ms };
let t = Date.now();
for (const q of spec.dns) report.dns.push(await resolve(q.server, q.name));
ms.dns = Date.now() - t;
t = Date.now();
const ca = readFileSync(spec.tls.caPath);
for (const sni of spec.tls.snis) report.tls.push(await openTls(spec.tls.address, ca, sni));
ms.tls = Date.now() - t;
t = Date.now();
try {
  report.mcp = await mcp(spec.mcp.url, spec.mcp.calls);
} catch (err) {
  report.mcp = [{ tool: '(connect)', error: (err as Error).message }];
}
ms.mcp = Date.now() - t;
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
