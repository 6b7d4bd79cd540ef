/*
 * What an agent says to a chat model through `ctx.llm`: OpenAI-compatible messages, tools and
 * tool calls, in the provider's own field names so they pass through unchanged.
 */

/** A call the model asked for: `function.arguments` is JSON text, as the model wrote it (it may not parse). */
export interface ToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

export type ChatMessage =
  | { readonly role: 'system' | 'user'; readonly content: string }
  | { readonly role: 'assistant'; readonly content: string | null; readonly tool_calls?: readonly ToolCall[] }
  /** The answer to one tool call, by its id. */
  | { readonly role: 'tool'; readonly content: string; readonly tool_call_id: string };

/** A tool the model may call: its name, what it does, and its arguments' JSON Schema. */
export interface ToolDefinition {
  readonly type: 'function';
  readonly function: { readonly name: string; readonly description?: string; readonly parameters?: unknown };
}

/** A chat request of an agent; the runtime adds the run (permits, routing, signal, logs). */
export interface AgentChatRequest {
  readonly messages: readonly ChatMessage[];
  /** Offered to the model; its answer may then be tool calls instead of (or beside) text. */
  readonly tools?: readonly ToolDefinition[];
  /** Default: the run's `model` (null or `auto`: LLM_ROUTING_RULES). */
  readonly model?: string | null;
  /** Asks for a web-search capable route and its longer timeout. Default false. */
  readonly webSearch?: boolean;
  /** Called with each piece of the reply's text as it streams in. */
  readonly onDelta?: (text: string) => void;
}

export interface ChatResult {
  readonly provider: string;
  readonly model: string;
  readonly content: string;
  /** The tool calls of the reply, whole (their streamed pieces joined); empty when none. */
  readonly toolCalls: readonly ToolCall[];
  readonly finishReason: string | null;
  readonly attempts: number;
}

/** The chat gateway as an agent sees it: LLM_PROVIDERS with their limits, timeouts, retries and routing. */
export interface AgentLlm {
  /** Rejects with a RunFailure (`provider_error`, `provider_timeout`, …) or the run's abort. */
  chat(request: AgentChatRequest): Promise<ChatResult>;
}
