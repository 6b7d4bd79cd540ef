import { z } from 'zod';
import { issuePhrase } from '../lib/zod-issue.js';

/** One OpenAI-compatible provider from LLM_PROVIDERS, with its API key resolved from the env. */
export interface LlmProviderConfig {
  readonly name: string;
  /** Base URL of the OpenAI-compatible API, e.g. `https://api.openai.com/v1` (no trailing slash). */
  readonly baseUrl: string;
  /** The variable that held the key, for messages; null when the provider takes none. */
  readonly apiKeyEnv: string | null;
  readonly apiKey: string | null;
  readonly models: readonly string[];
  /** Requests this instance may have open to the provider at once. */
  readonly maxInFlight: number;
}

/** One LLM_ROUTING_RULES entry: the first rule whose `match` fits a `model: "auto"` request picks its target. */
export interface RoutingRule {
  /** Request features the rule requires; an empty match fits every request. */
  readonly match: { readonly web_search?: boolean; readonly agent?: string };
  readonly provider: string;
  readonly model: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const providerSchema = z
  .object({
    name: z.string().regex(NAME, 'must be 1-32 letters, digits or ._- (starting with a letter or digit)'),
    base_url: z.string().refine((value) => {
      try {
        const url = new URL(value);
        return ['http:', 'https:'].includes(url.protocol) && url.username === '' && url.password === '' && url.search === '';
      } catch {
        return false; // reported by the refinement's message
      }
    }, 'must be an http:// or https:// URL without credentials or query (keys go in api_key_env)'),
    api_key_env: z.string().regex(ENV_NAME, 'must be the name of an environment variable').optional(),
    models: z.array(z.string().trim().min(1).max(200)).min(1, 'must list at least one model').max(1000),
    max_in_flight: z.number().int().min(1).max(100_000),
  })
  .strict();

const ruleSchema = z
  .object({
    match: z
      .object({ web_search: z.boolean().optional(), agent: z.string().min(1).max(100).optional() })
      .strict()
      .default({}),
    provider: z.string().min(1),
    model: z.string().min(1),
  })
  .strict();

function jsonArray(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`must be a JSON array (${(error as Error).message})`);
  }
}

/** Plainer messages than zod's defaults for the common mistakes; undefined keeps zod's. */
const messages: z.core.$ZodErrorMap = (issue) => {
  if (issue.code !== 'invalid_type') return undefined;
  if (issue.input === undefined) return 'is required';
  return `must be ${issue.expected === 'array' ? 'an array' : `a ${issue.expected}`}`;
};

/**
 * Parses LLM_PROVIDERS (a JSON array, see `.env.example`) and reads each provider's key from
 * `env[api_key_env]`. Throws Error with a human message naming the entry and field.
 */
export function parseLlmProviders(text: string, env: NodeJS.ProcessEnv): readonly LlmProviderConfig[] {
  const result = z.array(providerSchema).safeParse(jsonArray(text), { error: messages });
  if (!result.success) throw new Error(issuePhrase(result.error));
  const seen = new Set<string>();
  return Object.freeze(
    result.data.map((entry, index) => {
      if (seen.has(entry.name)) throw new Error(`names provider "${entry.name}" twice`);
      seen.add(entry.name);
      const apiKeyEnv = entry.api_key_env ?? null;
      const apiKey = apiKeyEnv === null ? null : (env[apiKeyEnv]?.trim() ?? '');
      if (apiKey === '') throw new Error(`[${index}].api_key_env names ${apiKeyEnv}, which is not set`);
      return Object.freeze({
        name: entry.name,
        baseUrl: entry.base_url.replace(/\/+$/, ''),
        apiKeyEnv,
        apiKey,
        models: Object.freeze([...entry.models]),
        maxInFlight: entry.max_in_flight,
      });
    }),
  );
}

/** Parses LLM_ROUTING_RULES (a JSON array, see `.env.example`); `checkRoutingRules` checks it against the providers. */
export function parseRoutingRules(text: string): readonly RoutingRule[] {
  const result = z.array(ruleSchema).min(1, 'must hold at least one rule').safeParse(jsonArray(text), { error: messages });
  if (!result.success) throw new Error(issuePhrase(result.error));
  return Object.freeze(
    result.data.map((rule) => Object.freeze({ match: Object.freeze({ ...rule.match }), provider: rule.provider, model: rule.model })),
  );
}

/** Throws Error naming the first rule whose provider is not configured or does not offer its model. */
export function checkRoutingRules(rules: readonly RoutingRule[], providers: readonly LlmProviderConfig[]): void {
  if (providers.length === 0) throw new Error('needs LLM_PROVIDERS');
  rules.forEach((rule, index) => {
    const provider = providers.find((p) => p.name === rule.provider);
    if (provider === undefined) throw new Error(`[${index}].provider "${rule.provider}" is not in LLM_PROVIDERS`);
    if (!provider.models.includes(rule.model)) {
      throw new Error(`[${index}].model "${rule.model}" is not among the models of provider "${rule.provider}"`);
    }
  });
}

/** Parses LLM_THINKING_MODELS: comma-separated model-name patterns where `*` matches any run of characters. */
export function parseModelPatterns(text: string): readonly string[] {
  const patterns = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (patterns.length === 0) throw new Error('must list at least one pattern');
  return Object.freeze(patterns);
}
