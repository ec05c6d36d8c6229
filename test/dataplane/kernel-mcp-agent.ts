// The MCP SDK client run as the managed agent inside a kernel-redirected cgroup
// (kernel-tls.test.ts): it opens a streamable HTTPS session to the real MCP
// server's address, trusting the CA the way `lilith run` makes it trusted
// (NODE_EXTRA_CA_CERTS); only the kernel sends it through the proxy. Calls
// read_file then run_command and prints one JSON line with what it saw.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url] = process.argv.slice(2);
const out: Record<string, unknown> = { pid: process.pid };
const client = new Client({ name: 'kernel-mcp-agent', version: '1' });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const text = (r: unknown) => (r as { content: Array<{ text: string }> }).content[0].text;
out.read = text(await client.callTool({ name: 'read_file', arguments: { path: '/workspace/readme' } }));
try {
  await client.callTool({ name: 'run_command', arguments: { command: 'curl https://paste.example' } });
  out.run = 'allowed';
} catch (err) {
  out.run = { code: (err as { code?: number }).code, message: (err as Error).message };
}
await client.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
