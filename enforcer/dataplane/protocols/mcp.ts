// MCP over HTTP: JSON-RPC 2.0 messages in POST bodies (streamable HTTP and the
// older HTTP+SSE transport's POST endpoint) and in responses, either a JSON body
// or a text/event-stream whose `data:` payloads are JSON-RPC messages.

export interface JsonRpcMessage {
  /** Present on requests and notifications. */
  method?: string;
  /** Present on requests and responses (a notification has none); BigInt beyond 2^53 (read by parseJsonExact). */
  id?: string | number | bigint | null;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}

export type ParsedBody = { ok: true; messages: JsonRpcMessage[]; batch: boolean } | { ok: false; reason: string };

/** Parses a POST body: one JSON-RPC message or a batch (array) of them. */
export function parseJsonRpc(text: string): ParsedBody {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${(err as Error).message}` };
  }
  return jsonRpcFromValue(value);
}

/** Whether a parsed JSON body is meant as JSON-RPC (an object, or array of objects, naming jsonrpc or method): then it is decided as MCP. */
export function looksLikeJsonRpc(value: unknown): boolean {
  const items = Array.isArray(value) ? value : [value];
  return items.some((m) => m !== null && typeof m === 'object' && !Array.isArray(m) && ('jsonrpc' in m || 'method' in m));
}

/** Validates a parsed body as one JSON-RPC message or a batch. */
export function jsonRpcFromValue(value: unknown): ParsedBody {
  const batch = Array.isArray(value);
  const items = batch ? (value as unknown[]) : [value];
  if (items.length === 0) return { ok: false, reason: 'empty JSON-RPC batch' };
  const messages: JsonRpcMessage[] = [];
  for (const item of items) {
    if (!item || typeof item !== 'object' || Array.isArray(item)) return { ok: false, reason: 'JSON-RPC message is not an object' };
    const m = item as Record<string, unknown>;
    if (m.jsonrpc !== '2.0') return { ok: false, reason: 'missing jsonrpc: "2.0"' };
    if ('method' in m && typeof m.method !== 'string') return { ok: false, reason: 'method is not a string' };
    if ('id' in m && m.id !== null && typeof m.id !== 'string' && typeof m.id !== 'number' && typeof m.id !== 'bigint')
      return { ok: false, reason: 'id is not a string or number' };
    if (!('method' in m) && !('result' in m) && !('error' in m)) return { ok: false, reason: 'neither a request nor a response' };
    messages.push(m as JsonRpcMessage);
  }
  return { ok: true, messages, batch };
}

/** What a client→server message is, for policy. */
export type McpCall =
  | { kind: 'tool'; tool: string; arguments: Record<string, unknown> }
  | { kind: 'resource'; uri: string }
  | { kind: 'prompt'; prompt: string }
  | { kind: 'session'; method: string }
  | { kind: 'invalid'; reason: string };

export function classifyMessage(m: JsonRpcMessage): McpCall {
  if (m.method === undefined) return { kind: 'session', method: 'response' }; // a client's answer to a server request
  const params = (m.params && typeof m.params === 'object' ? m.params : {}) as Record<string, unknown>;
  switch (m.method) {
    case 'tools/call': {
      if (typeof params.name !== 'string' || params.name === '') return { kind: 'invalid', reason: 'tools/call without a tool name' };
      const args = params.arguments;
      if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args)))
        return { kind: 'invalid', reason: 'tools/call arguments is not an object' };
      return { kind: 'tool', tool: params.name, arguments: (args ?? {}) as Record<string, unknown> };
    }
    case 'resources/read':
      if (typeof params.uri !== 'string') return { kind: 'invalid', reason: 'resources/read without a uri' };
      return { kind: 'resource', uri: params.uri };
    case 'prompts/get':
      if (typeof params.name !== 'string') return { kind: 'invalid', reason: 'prompts/get without a name' };
      return { kind: 'prompt', prompt: params.name };
    default:
      return { kind: 'session', method: m.method };
  }
}

/** The JSON-RPC error the proxy answers a refused request with (-32600 family: invalid request). */
export const POLICY_DENIED_CODE = -32600;
export const PARSE_ERROR_CODE = -32700;

/**
 * How a request id is matched with its response's id. Responses are read with
 * JSON.parse, which rounds integers beyond 2^53 to the nearest double; a request id
 * read exactly (BigInt) is rounded the same way, so its response is always found
 * (two ids rounding alike are both inspected: more inspection, never less).
 */
export function idKey(id: string | number | bigint): string | number {
  return typeof id === 'bigint' ? Number(id) : id;
}

export function jsonRpcError(id: string | number | bigint | null, code: number, message: string, data?: unknown): Record<string, unknown> {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Incremental text/event-stream parser (WHATWG rules: lines end in CRLF, LF or
 * CR; blank line dispatches; `data` lines join with LF). Events whose data
 * exceeds `maxEventBytes` are dropped from inspection (they still stream through).
 */
export class SseParser {
  #buf = '';
  #data: string[] = [];
  #dataBytes = 0;
  #event = '';
  #id: string | undefined;
  #oversized = false;
  readonly #decoder = new TextDecoder();
  constructor(
    private readonly onEvent: (e: SseEvent) => void,
    private readonly maxEventBytes = 10 * 1024 * 1024,
  ) {}

  push(chunk: Buffer): void {
    this.#buf += this.#decoder.decode(chunk, { stream: true });
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buf);
      if (!m) break;
      // A lone CR at the end might be the first half of CRLF: wait for the next chunk.
      if (m[0] === '\r' && m.index === this.#buf.length - 1) break;
      const line = this.#buf.slice(0, m.index);
      this.#buf = this.#buf.slice(m.index + m[0].length);
      this.#line(line);
    }
    if (this.#buf.length > this.maxEventBytes) {
      this.#buf = '';
      this.#oversized = true;
    }
  }

  #line(line: string): void {
    if (line === '') {
      if (this.#data.length && !this.#oversized)
        this.onEvent({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id });
      this.#data = [];
      this.#dataBytes = 0;
      this.#event = '';
      this.#oversized = false;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.#dataBytes += value.length;
      if (this.#dataBytes > this.maxEventBytes) this.#oversized = true;
      else this.#data.push(value);
    } else if (field === 'event') this.#event = value;
    else if (field === 'id') this.#id = value;
  }
}
