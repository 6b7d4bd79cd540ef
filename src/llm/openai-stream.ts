import { z } from 'zod';
import type { ToolCall } from '../domain/index.js';
import { ProviderError, ProviderTimeoutError } from './errors.js';
import { parseRetryAfterMs } from './retry-policy.js';
import { SseDataDecoder } from './sse-data-decoder.js';
import { ToolCallAccumulator } from './tool-call-accumulator.js';

export type { ChatMessage } from '../domain/index.js';

export interface ProviderEndpoint {
  readonly name: string;
  /** The API root that has `/chat/completions`. */
  readonly baseUrl: string;
  readonly apiKey: string | null;
}

export interface CompletionAttempt {
  readonly fetch: typeof fetch;
  readonly provider: ProviderEndpoint;
  /** The request body; `stream: true` is what makes deltas arrive as they are generated. */
  readonly body: Readonly<Record<string, unknown>>;
  /** Aborts the attempt (run cancel, request deadline); its reason is what the attempt rejects with. */
  readonly signal: AbortSignal;
  /** Once the response has started, a silence this long aborts it with ProviderTimeoutError. */
  readonly idleTimeoutMs: number;
  readonly onDelta: (text: string) => void;
}

export interface CompletionResult {
  readonly content: string;
  /** Whole tool calls (streamed pieces joined); empty when the reply has none. */
  readonly toolCalls: readonly ToolCall[];
  readonly finishReason: string | null;
}

/** Most bytes of an error body read for its message. */
const ERROR_BODY_BYTES = 4096;
const ERROR_DETAIL_CHARS = 300;

const errorBody = z.object({
  error: z.union([z.string(), z.object({ message: z.string().optional() })]).optional(),
  message: z.string().optional(),
});
const toolCallDelta = z.object({
  index: z.number().int().min(0).max(1000),
  id: z.string().nullish(),
  function: z.object({ name: z.string().nullish(), arguments: z.string().nullish() }).nullish(),
});
const streamChunk = z.object({
  choices: z
    .array(
      z.object({
        delta: z.object({ content: z.string().nullish(), tool_calls: z.array(toolCallDelta).nullish() }).nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .nullish(),
  error: z.unknown().optional(),
});
const wholeToolCall = z.object({ id: z.string(), function: z.object({ name: z.string(), arguments: z.string() }) });
const completion = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullish(), tool_calls: z.array(wholeToolCall).nullish() }),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1),
});

/**
 * One attempt of an OpenAI-compatible `POST /chat/completions` with `stream: true` over fetch:
 * streams content deltas to `onDelta` and resolves with the whole reply. Rejects with
 * ProviderError (`retryable` when it failed before any byte of a response: 429, 5xx, no
 * connection), ProviderTimeoutError when the stream went silent, or the signal's reason.
 */
export async function streamCompletion(attempt: CompletionAttempt): Promise<CompletionResult> {
  const { provider } = attempt;
  const local = new AbortController();
  const signal = AbortSignal.any([attempt.signal, local.signal]);
  let idleTimer: NodeJS.Timeout | undefined;
  let idleFired = false;
  const armIdle = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => {
      idleFired = true;
      local.abort(
        new ProviderTimeoutError(
          provider.name,
          `sent nothing for ${attempt.idleTimeoutMs} ms in the middle of its answer (LLM_IDLE_TIMEOUT_MS)`,
        ),
      );
    }, attempt.idleTimeoutMs);
  };
  let response: Response | undefined;
  try {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream, application/json' };
    if (provider.apiKey !== null) headers.authorization = `Bearer ${provider.apiKey}`;
    response = await attempt.fetch(`${provider.baseUrl}/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify(attempt.body),
      signal,
    });
    armIdle();
    if (!response.ok) throw await statusError(provider, response);
    if (response.body === null) throw new ProviderError(provider.name, `answered ${response.status} without a body`);
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      return await wholeCompletion(provider.name, response, attempt.onDelta);
    }
    return await readStream(provider.name, response.body, armIdle, attempt.onDelta);
  } catch (error) {
    if (attempt.signal.aborted) throw attempt.signal.reason;
    if (idleFired) throw local.signal.reason;
    if (error instanceof ProviderError || error instanceof ProviderTimeoutError) throw error;
    const detail = response === undefined ? `could not be reached: ${describe(error)}` : `broke off its answer: ${describe(error)}`;
    throw new ProviderError(provider.name, detail, { retryable: response === undefined });
  } finally {
    clearTimeout(idleTimer);
    // Ends the connection when the body was not read to its end (no-op after a complete answer).
    local.abort();
  }
}

async function readStream(
  provider: string,
  body: ReadableStream<Uint8Array>,
  armIdle: () => void,
  onDelta: (text: string) => void,
): Promise<CompletionResult> {
  const reader = body.getReader();
  const decoder = new SseDataDecoder();
  let content = '';
  let finishReason: string | null = null;
  const toolCalls = new ToolCallAccumulator();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    armIdle();
    for (const payload of decoder.push(value)) {
      if (payload.trim() === '[DONE]') return { content, toolCalls: toolCalls.result(), finishReason };
      const chunk = parseChunk(provider, payload);
      for (const choice of chunk.choices ?? []) {
        const text = choice.delta?.content;
        if (typeof text === 'string' && text !== '') {
          content += text;
          onDelta(text);
        }
        for (const call of choice.delta?.tool_calls ?? []) toolCalls.push(call);
        if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
      }
    }
  }
  // Some servers end the stream without [DONE]; a finish_reason says the reply is whole.
  if (finishReason !== null) return { content, toolCalls: toolCalls.result(), finishReason };
  throw new ProviderError(provider, 'ended its stream before the reply was complete');
}

function parseChunk(provider: string, payload: string): z.output<typeof streamChunk> {
  let json: unknown;
  try {
    json = JSON.parse(payload);
  } catch {
    throw new ProviderError(provider, `sent a stream event that is not JSON: ${clip(payload)}`, {
      logDetail: 'sent a stream event that is not JSON',
    });
  }
  const chunk = streamChunk.safeParse(json);
  if (!chunk.success) {
    throw new ProviderError(provider, `sent a stream event of an unknown shape: ${clip(payload)}`, {
      logDetail: 'sent a stream event of an unknown shape',
    });
  }
  if (chunk.data.error !== undefined && chunk.data.error !== null) {
    throw new ProviderError(provider, `reported an error in its stream: ${clip(errorDetail(json) ?? payload)}`, {
      logDetail: 'reported an error in its stream',
    });
  }
  return chunk.data;
}

/** A non-streamed JSON completion (a server that ignored `stream: true`): one delta with the whole reply. */
async function wholeCompletion(provider: string, response: Response, onDelta: (text: string) => void): Promise<CompletionResult> {
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProviderError(provider, `answered with neither an event stream nor JSON: ${clip(text)}`, {
      logDetail: 'answered with neither an event stream nor JSON',
    });
  }
  const parsed = completion.safeParse(json);
  if (!parsed.success) {
    throw new ProviderError(provider, `answered with JSON that is not a chat completion: ${clip(text)}`, {
      logDetail: 'answered with JSON that is not a chat completion',
    });
  }
  const choice = parsed.data.choices[0] as (typeof parsed.data.choices)[number];
  const content = choice.message.content ?? '';
  if (content !== '') onDelta(content);
  const toolCalls = (choice.message.tool_calls ?? []).map((call) => ({ id: call.id, type: 'function' as const, function: call.function }));
  return { content, toolCalls, finishReason: choice.finish_reason ?? null };
}

async function statusError(provider: ProviderEndpoint, response: Response): Promise<ProviderError> {
  const { status } = response;
  if (status === 401 || status === 403) {
    // Providers echo (partly masked) keys in these messages: the run's owner must not see them.
    await response.body?.cancel();
    const fix = provider.apiKey === null ? 'it may need an api_key_env in LLM_PROVIDERS' : 'the operator should check its key';
    return new ProviderError(provider.name, `refused agentd's credentials (${status}); ${fix}`, { status });
  }
  const text = await readSome(response, ERROR_BODY_BYTES);
  let detail: string | undefined;
  try {
    detail = errorDetail(JSON.parse(text));
  } catch {
    detail = text.trim() === '' ? undefined : text; // not JSON: the text itself
  }
  if (detail !== undefined && provider.apiKey !== null) detail = detail.split(provider.apiKey).join('[redacted]');
  const retryable = status === 429 || status >= 500;
  return new ProviderError(provider.name, `answered ${status}${detail === undefined ? '' : `: ${clip(detail)}`}`, {
    status,
    logDetail: `answered ${status}`,
    retryable,
    retryAfterMs: retryable ? parseRetryAfterMs(response.headers, Date.now()) : undefined,
  });
}

function errorDetail(json: unknown): string | undefined {
  const parsed = errorBody.safeParse(json);
  if (!parsed.success) return undefined;
  const { error, message } = parsed.data;
  return typeof error === 'string' ? error : (error?.message ?? message);
}

/** The first `maxBytes` of a body as text; the rest is not read. */
async function readSome(response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (total < maxBytes) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
  }
  if (total >= maxBytes) await reader.cancel();
  return Buffer.concat(chunks).subarray(0, maxBytes).toString('utf8');
}

function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > ERROR_DETAIL_CHARS ? `${flat.slice(0, ERROR_DETAIL_CHARS)}…` : flat;
}

/** A fetch failure in a few words: undici hides the socket error (ECONNREFUSED, …) in `cause`. */
function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
