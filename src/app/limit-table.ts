import type { Limit } from '../concurrency/sizing.js';
import { configVariables, type Config } from '../config/config.js';
import type { LimitTable } from '../observability/capacity-report.js';

/**
 * Every limit of this instance by the variable that sets it: the configured ones marked
 * `limit` in the schema with where their value came from, then what start-up sized (auto
 * values, or the env value a sizing function confirmed), which wins.
 */
export function limitTable(config: Config, sized: Readonly<Record<string, Limit>>): LimitTable {
  const table: Record<string, Limit> = {};
  for (const { section, key, variable } of configVariables()) {
    const value = (config[section] as Record<string, unknown>)[key];
    if (variable.limit && typeof value === 'number')
      table[variable.env] = { value, source: config.sources[variable.env as keyof Config['sources']] };
  }
  return Object.freeze({ ...table, ...sized });
}
