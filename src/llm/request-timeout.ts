/** The four request timeouts, in ms (LLM_TIMEOUT_MS and its web-search / thinking variants). */
export interface LlmTimeouts {
  readonly baseMs: number;
  readonly webSearchMs: number;
  readonly thinkingMs: number;
  readonly webThinkingMs: number;
}

export interface RequestTimeout {
  readonly timeoutMs: number;
  /** The variable that set it, for messages. */
  readonly setting: 'LLM_TIMEOUT_MS' | 'LLM_WEB_SEARCH_TIMEOUT_MS' | 'LLM_THINKING_TIMEOUT_MS' | 'LLM_WEB_THINKING_TIMEOUT_MS';
}

/**
 * The timeout of one request by its type: a thinking model with web search gets the longest,
 * then thinking alone, then web search alone, then the base timeout.
 */
export function selectTimeout(timeouts: LlmTimeouts, request: { readonly webSearch: boolean; readonly thinking: boolean }): RequestTimeout {
  if (request.webSearch && request.thinking) return { timeoutMs: timeouts.webThinkingMs, setting: 'LLM_WEB_THINKING_TIMEOUT_MS' };
  if (request.thinking) return { timeoutMs: timeouts.thinkingMs, setting: 'LLM_THINKING_TIMEOUT_MS' };
  if (request.webSearch) return { timeoutMs: timeouts.webSearchMs, setting: 'LLM_WEB_SEARCH_TIMEOUT_MS' };
  return { timeoutMs: timeouts.baseMs, setting: 'LLM_TIMEOUT_MS' };
}
