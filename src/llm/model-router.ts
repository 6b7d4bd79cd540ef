import type { LlmProviderConfig, RoutingRule } from '../config/llm-providers.js';
import { BoundedCache } from '../lib/bounded-cache.js';
import { ModelRoutingError } from './errors.js';

/** Where a request goes: a configured provider and one of its models. */
export interface RouteTarget {
  readonly provider: string;
  readonly model: string;
}

/** What routing rules may look at. */
export interface RouteInputs {
  readonly webSearch: boolean;
  readonly agent: string;
}

/** Counts cache use (metrics); kept narrow so the router knows nothing of prom-client. */
export interface RoutingObserver {
  cacheHit(): void;
  cacheMiss(): void;
}

export const AUTO_MODEL = 'auto';

/** Cached routing decisions at most: keys combine web_search and agent names, so there are few; this only bounds a surprise. */
const ROUTE_CACHE_MAX = 1_000;

/**
 * Resolves a run's model to a provider and model. An explicit model is looked up among the
 * providers' models (first provider listing it wins; `<provider>/<model>` picks one); `auto`
 * or none goes through LLM_ROUTING_RULES, first match wins, and the decision is cached for
 * ROUTING_CACHE_TTL_MS per combination of the inputs the rules look at.
 */
export class ModelRouter {
  private readonly byModel = new Map<string, RouteTarget>();
  private readonly providerModels = new Map<string, ReadonlySet<string>>();
  private readonly rules: readonly RoutingRule[];
  private readonly cache: BoundedCache<string, RouteTarget>;
  private readonly observer: RoutingObserver;
  /** The match keys some rule uses: only these make up the cache key. */
  private readonly relevant: { readonly webSearch: boolean; readonly agent: boolean };

  constructor(options: {
    readonly providers: readonly LlmProviderConfig[];
    /** Null: every `auto` request goes to the first provider's first model. */
    readonly rules: readonly RoutingRule[] | undefined;
    readonly cacheTtlMs: number;
    readonly observer: RoutingObserver;
    readonly now?: () => number;
  }) {
    for (const provider of options.providers) {
      this.providerModels.set(provider.name, new Set(provider.models));
      for (const model of provider.models) {
        if (!this.byModel.has(model)) this.byModel.set(model, { provider: provider.name, model });
      }
    }
    const first = options.providers[0];
    this.rules = options.rules ?? (first === undefined ? [] : [{ match: {}, provider: first.name, model: first.models[0] as string }]);
    this.relevant = {
      webSearch: this.rules.some((rule) => rule.match.web_search !== undefined),
      agent: this.rules.some((rule) => rule.match.agent !== undefined),
    };
    this.cache = new BoundedCache({ maxEntries: ROUTE_CACHE_MAX, ttlMs: options.cacheTtlMs, now: options.now });
    this.observer = options.observer;
  }

  /** The target for a requested model (null or `auto`: by the rules); throws ModelRoutingError. */
  resolve(model: string | null, inputs: RouteInputs): RouteTarget {
    if (model === null || model === AUTO_MODEL) return this.route(inputs);
    const direct = this.byModel.get(model);
    if (direct !== undefined) return direct;
    const slash = model.indexOf('/');
    if (slash > 0) {
      const provider = model.slice(0, slash);
      const name = model.slice(slash + 1);
      if (this.providerModels.get(provider)?.has(name) === true) return { provider, model: name };
    }
    const offered = [...this.byModel.keys()];
    throw new ModelRoutingError(
      `No configured provider offers model "${model}"; use "auto" or one of: ${offered.slice(0, 20).join(', ')}${offered.length > 20 ? ', …' : ''} (LLM_PROVIDERS).`,
      'No configured provider offers the model the run named (LLM_PROVIDERS).',
    );
  }

  private route(inputs: RouteInputs): RouteTarget {
    const key = JSON.stringify([this.relevant.webSearch ? inputs.webSearch : null, this.relevant.agent ? inputs.agent : null]);
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.observer.cacheHit();
      return cached;
    }
    this.observer.cacheMiss();
    const rule = this.rules.find(
      (r) =>
        (r.match.web_search === undefined || r.match.web_search === inputs.webSearch) &&
        (r.match.agent === undefined || r.match.agent === inputs.agent),
    );
    if (rule === undefined) {
      throw new ModelRoutingError(
        `No LLM_ROUTING_RULES rule matches a request with web_search=${inputs.webSearch} from agent "${inputs.agent}"; add a last rule without "match" as the fallback, or name a model.`,
      );
    }
    const target = { provider: rule.provider, model: rule.model };
    this.cache.set(key, target);
    return target;
  }
}
