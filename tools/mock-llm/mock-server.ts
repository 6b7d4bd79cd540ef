import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';

/**
 * A mock OpenAI-compatible server for tests and the benchmark: `POST /v1/chat/completions`
 * answers a streamed (SSE `data: {chunk}` … `data: [DONE]`) or a plain JSON completion whose
 * reply is `mockReply(tokens)`, with configurable latency and failures. Binds 127.0.0.1 only.
 *
 * Behaviour is layered: built-in defaults < `options.defaults` < `options.models[<model>]` <
 * the request's `x-mock` header (a JSON object of the same fields), so a test can give each
 * model name its own behaviour and a curl user can try any behaviour per request.
 */

export const mockBehaviourSchema = z
  .object({
    /** Content pieces in the reply. */
    tokens: z.number().int().min(0).max(1_000_000),
    /** Pause before each piece after the first, in ms. */
    tokenLatencyMs: z.number().int().min(0).max(3_600_000),
    /** Pause before the status line, in ms. */
    firstByteDelayMs: z.number().int().min(0).max(3_600_000),
    /** Answer this error instead (with `Retry-After: retryAfterS` when set); with `times`, only the first `times` attempts of each distinct request body fail. */
    error: z
      .object({
        status: z.number().int().min(400).max(599),
        retryAfterS: z.number().min(0).max(86_400).optional(),
        times: z.number().int().min(1).optional(),
      })
      .strict()
      .nullable(),
    /** Never answer: the connection stays open until the client gives up. */
    hangBeforeFirstByte: z.boolean(),
    /** Stream this many pieces, then send nothing more while keeping the connection open. */
    hangAfterTokens: z.number().int().min(0).nullable(),
    /**
     * Answer a request that offers `tools` with these calls (each must name an offered tool) until
     * the conversation holds tool results; then the reply is `Tool results: <their contents, "; ">`.
     */
    toolCalls: z
      .array(z.object({ name: z.string().min(1), arguments: z.record(z.string(), z.unknown()) }).strict())
      .min(1)
      .nullable(),
  })
  .strict();

export type MockBehaviour = z.output<typeof mockBehaviourSchema>;
export const mockOverrideSchema = mockBehaviourSchema.partial();
export type MockOverride = z.input<typeof mockOverrideSchema>;

export const MOCK_DEFAULTS: MockBehaviour = Object.freeze({
  tokens: 5,
  tokenLatencyMs: 0,
  firstByteDelayMs: 0,
  error: null,
  hangBeforeFirstByte: false,
  hangAfterTokens: null,
  toolCalls: null,
});

export interface MockLlmOptions {
  /** Default 0: any free port. */
  readonly port?: number;
  readonly defaults?: MockOverride;
  /** Behaviour by the request's `model`. */
  readonly models?: Readonly<Record<string, MockOverride>>;
  /** When set, requests must send `Authorization: Bearer <apiKey>` (else 401). */
  readonly apiKey?: string;
}

export interface MockLlmStats {
  /** Most requests open at once since start or reset(). */
  readonly maxOpen: number;
  /** Requests being answered now. */
  readonly open: number;
  /** Chat completion requests received since start or reset(). */
  readonly requests: number;
  readonly byModel: Readonly<Record<string, number>>;
}

export interface MockLlm {
  /** The base URL for LLM_PROVIDERS, ending in `/v1`. */
  readonly url: string;
  readonly port: number;
  stats(): MockLlmStats;
  /** Zeroes the counters (maxOpen restarts from what is open now) and forgets attempt counts. */
  reset(): void;
  /** Stops listening and destroys every connection, hanging ones too; idempotent. */
  close(): Promise<void>;
}

/** The reply's pieces for `count` tokens: `w0`, ` w1`, ` w2`, … */
export function mockTokens(count: number): string[] {
  return Array.from({ length: count }, (_, i) => (i === 0 ? 'w0' : ` w${i}`));
}

/** The whole reply for `count` tokens. */
export function mockReply(count: number): string {
  return mockTokens(count).join('');
}

const MAX_BODY_BYTES = 1024 * 1024;

const chatBody = z.object({
  model: z.string().min(1),
  messages: z.array(z.object({ role: z.string(), content: z.unknown() })).min(1),
  stream: z.boolean().optional(),
  tools: z.array(z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })).optional(),
});

/** A tool call as the mock answers it: `arguments` is JSON text, as OpenAI sends it. */
interface MockToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

/**
 * The tool calls to answer with, or null for a text reply: the behaviour's, while the request
 * offers tools and has no tool result yet. Naming a tool the request did not offer is a 400.
 */
function toolCallsFor(parsed: z.output<typeof chatBody>, behaviour: MockBehaviour, id: string): MockToolCall[] | null {
  if (behaviour.toolCalls === null || parsed.tools === undefined) return null;
  if (parsed.messages.some((m) => m.role === 'tool')) return null;
  const offered = new Set(parsed.tools.map((t) => t.function.name));
  return behaviour.toolCalls.map((call, index) => {
    if (!offered.has(call.name)) throw new HttpFailure(400, `The tool "${call.name}" is not among the request's tools.`);
    return { id: `call_${id}_${index}`, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.arguments) } };
  });
}

/** The text reply's pieces: `mockTokens`, or after tool results, those results. */
function replyPieces(parsed: z.output<typeof chatBody>, behaviour: MockBehaviour): string[] {
  if (behaviour.toolCalls === null || !parsed.messages.some((m) => m.role === 'tool')) return mockTokens(behaviour.tokens);
  const results = parsed.messages.filter((m) => m.role === 'tool').map((m) => String(m.content));
  return ['Tool results: ', results.join('; ')];
}

class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the mock on 127.0.0.1. */
export async function startMockLlm(options: MockLlmOptions = {}): Promise<MockLlm> {
  const defaults = { ...MOCK_DEFAULTS, ...mockOverrideSchema.parse(options.defaults ?? {}) };
  const models = new Map(Object.entries(options.models ?? {}).map(([name, o]) => [name, mockOverrideSchema.parse(o)]));
  const attempts = new Map<string, number>();
  let stats = { maxOpen: 0, open: 0, requests: 0, byModel: {} as Record<string, number> };
  let sequence = 0;

  const server = createServer((req, res) => {
    stats.open += 1;
    stats.maxOpen = Math.max(stats.maxOpen, stats.open);
    const gone = new AbortController();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stats.open -= 1;
    };
    res.on('close', () => {
      finish();
      gone.abort();
    });
    const respond = async () => {
      try {
        await handle(req, res, gone.signal, finish);
      } catch (error) {
        if (gone.signal.aborted) return; // the client left or the mock is closing
        const status = error instanceof HttpFailure ? error.status : 500;
        if (!res.headersSent) sendJson(res, status, { error: { message: (error as Error).message, type: 'mock_error' } }, finish);
        else res.destroy();
      }
    };
    void respond();
  });

  async function handle(req: IncomingMessage, res: ServerResponse, signal: AbortSignal, finish: () => void): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/v1/models') {
      const data = [...models.keys()].map((id) => ({ id, object: 'model', owned_by: 'mock' }));
      return sendJson(res, 200, { object: 'list', data }, finish);
    }
    if (req.method !== 'POST' || path !== '/v1/chat/completions') throw new HttpFailure(404, `no route for ${req.method} ${path}`);
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      throw new HttpFailure(401, 'Incorrect API key provided.');
    }
    const raw = await readBody(req);
    let parsed: z.output<typeof chatBody>;
    try {
      parsed = chatBody.parse(JSON.parse(raw));
    } catch {
      throw new HttpFailure(400, 'The body must be JSON with "model" and a non-empty "messages" array.');
    }
    const behaviour = { ...defaults, ...models.get(parsed.model), ...override(req.headers['x-mock']) };
    stats.requests += 1;
    stats.byModel[parsed.model] = (stats.byModel[parsed.model] ?? 0) + 1;
    const key = createHash('sha256').update(raw).digest('hex');
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    sequence += 1;
    const id = `chatcmpl-mock-${sequence}`;

    if (behaviour.hangBeforeFirstByte) return hang(signal);
    if (behaviour.firstByteDelayMs > 0) await sleep(behaviour.firstByteDelayMs, undefined, { signal });
    const { error } = behaviour;
    if (error !== null && (error.times === undefined || attempt <= error.times)) {
      if (error.retryAfterS !== undefined) res.setHeader('retry-after', String(error.retryAfterS));
      const type = error.status === 429 ? 'rate_limit_error' : error.status >= 500 ? 'server_error' : 'invalid_request_error';
      return sendJson(res, error.status, { error: { message: `mock ${error.status} (attempt ${attempt})`, type } }, finish);
    }
    const toolCalls = toolCallsFor(parsed, behaviour, String(sequence));
    const pieces = toolCalls === null ? replyPieces(parsed, behaviour) : [];
    const created = Math.floor(Date.now() / 1000);
    if (parsed.stream !== true) {
      if (behaviour.hangAfterTokens !== null) return hang(signal);
      if (behaviour.tokenLatencyMs > 0) await sleep(behaviour.tokenLatencyMs * Math.max(0, pieces.length - 1), undefined, { signal });
      const message =
        toolCalls === null ? { role: 'assistant', content: pieces.join('') } : { role: 'assistant', content: null, tool_calls: toolCalls };
      const finishReason = toolCalls === null ? 'stop' : 'tool_calls';
      const usage = {
        prompt_tokens: parsed.messages.length,
        completion_tokens: pieces.length,
        total_tokens: parsed.messages.length + pieces.length,
      };
      return sendJson(
        res,
        200,
        {
          id,
          object: 'chat.completion',
          created,
          model: parsed.model,
          choices: [{ index: 0, message, finish_reason: finishReason }],
          usage,
        },
        finish,
      );
    }
    return streamReply(res, { id, created, model: parsed.model, pieces, toolCalls, behaviour, signal, finish });
  }

  function override(header: string | string[] | undefined): MockOverride {
    if (header === undefined) return {};
    const text = Array.isArray(header) ? header.join(',') : header;
    try {
      return mockOverrideSchema.parse(JSON.parse(text));
    } catch (error) {
      const detail = error instanceof z.ZodError ? z.prettifyError(error).replace(/\s+/g, ' ') : (error as Error).message;
      throw new HttpFailure(400, `x-mock must be a JSON object of mock behaviour fields: ${detail}`);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    stats: () => ({ maxOpen: stats.maxOpen, open: stats.open, requests: stats.requests, byModel: { ...stats.byModel } }),
    reset() {
      stats = { maxOpen: stats.open, open: stats.open, requests: 0, byModel: {} };
      attempts.clear();
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Writes the reply as OpenAI `chat.completion.chunk` events, pausing or hanging as the behaviour says. */
async function streamReply(
  res: ServerResponse,
  reply: {
    readonly id: string;
    readonly created: number;
    readonly model: string;
    readonly pieces: readonly string[];
    readonly toolCalls: readonly MockToolCall[] | null;
    readonly behaviour: MockBehaviour;
    readonly signal: AbortSignal;
    readonly finish: () => void;
  },
): Promise<void> {
  const { behaviour, signal, pieces } = reply;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const chunk = (delta: Record<string, unknown>, finishReason: string | null) =>
    `data: ${JSON.stringify({ id: reply.id, object: 'chat.completion.chunk', created: reply.created, model: reply.model, choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
  res.write(chunk({ role: 'assistant', content: '' }, null));
  for (const [index, piece] of pieces.entries()) {
    if (behaviour.hangAfterTokens === index) return hang(signal);
    if (index > 0 && behaviour.tokenLatencyMs > 0) await sleep(behaviour.tokenLatencyMs, undefined, { signal });
    res.write(chunk({ content: piece }, null));
  }
  if (behaviour.hangAfterTokens !== null && behaviour.hangAfterTokens >= pieces.length) return hang(signal);
  // Each call as OpenAI streams it: id and name first, then its arguments' text in two pieces.
  for (const [index, call] of (reply.toolCalls ?? []).entries()) {
    const half = Math.ceil(call.function.arguments.length / 2);
    res.write(
      chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] }, null),
    );
    res.write(chunk({ tool_calls: [{ index, function: { arguments: call.function.arguments.slice(0, half) } }] }, null));
    res.write(chunk({ tool_calls: [{ index, function: { arguments: call.function.arguments.slice(half) } }] }, null));
  }
  res.write(chunk({}, reply.toolCalls === null ? 'stop' : 'tool_calls'));
  res.write('data: [DONE]\n\n');
  reply.finish();
  res.end();
}

/** Waits until the client leaves or the mock closes (both abort `signal`). */
function hang(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown, finish: () => void): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  finish();
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_BODY_BYTES) throw new HttpFailure(413, `The body is larger than ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
