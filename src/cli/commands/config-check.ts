import type { Command } from 'commander';
import type { Config, VariableEntry } from '../../config/config.js';
import { ConfigError } from '../../domain/index.js';
import { redactPasswords } from '../../lib/redact-url.js';
import { action, printJson } from '../action.js';
import { EXIT } from '../exit-codes.js';
import { table, type Terminal } from '../terminal.js';

/** One variable as `config check` shows it. */
interface Resolved {
  readonly name: string;
  /** As agentd reads it; null when unset (auto-sized or absent) or when secret. */
  readonly value: string | null;
  readonly source: 'env' | 'default' | 'auto';
  readonly secret: boolean;
}

/** A parsed value as text: lists and tier maps as they are written in the environment, the rest as JSON. */
function text(value: unknown): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value instanceof Map) return [...(value as Map<unknown, unknown>)].map(([k, v]) => `${String(k)}:${String(v)}`).join(',');
  if (Array.isArray(value) && value.length === 0) return '(none)';
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(',');
  return JSON.stringify(value) ?? 'null';
}

/** Every variable with its value (secrets set in the environment never shown, URL passwords as `***`) and source. */
export function resolvedConfig(config: Config, variables: readonly VariableEntry[]): Resolved[] {
  return variables.map(({ section, key, variable }) => {
    const value = (config[section] as Record<string, unknown>)[key];
    const source = config.sources[variable.env as keyof Config['sources']];
    const hidden = variable.secret && source === 'env';
    let shown: string | null = value === undefined || hidden ? null : redactPasswords(text(value));
    if (variable.env === 'INSTANCE_ID') shown = config.instanceId;
    return { name: variable.env, value: shown, source: value === undefined && variable.limit ? 'auto' : source, secret: hidden };
  });
}

function shownValue(entry: Resolved): string {
  if (entry.secret) return '(set, not shown)';
  if (entry.value !== null) return entry.value;
  return entry.source === 'auto' ? '(sized at start-up)' : '(unset)';
}

/** `agentd config check`: the server configuration this environment gives, checked as start-up checks it. */
export function registerConfig(program: Command, terminal: Terminal): void {
  const config = program.command('config').description("the server's configuration");
  config
    .command('check')
    .description(
      'check the environment as `agentd serve` would read it, and show every variable with its value and source (secrets not shown); exits 2 when it is invalid',
    )
    .option('--json', 'print {"valid", "variables": [{name, value, source, secret}], "near_misses"} as JSON')
    .action(
      action<{ json?: boolean }>(terminal, async ({ options }) => {
        // Loaded here, not with the CLI: the schema and its parsers are most of a start-up's cost.
        const { configVariables, loadConfig } = await import('../../config/config.js');
        let loaded: Config;
        try {
          loaded = loadConfig(process.env);
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          if (options.json === true) printJson(terminal, { valid: false, problems: error.message });
          terminal.stderr.write(`${error.message}\n`);
          return EXIT.usage;
        }
        const variables = resolvedConfig(loaded, configVariables());
        const nearMisses = loaded.nearMisses.map(({ name, intended }) => ({ name, intended }));
        if (options.json === true) {
          printJson(terminal, { valid: true, variables, near_misses: nearMisses });
          return EXIT.ok;
        }
        const rows = variables.map((entry) => [entry.name, shownValue(entry), entry.source]);
        terminal.stdout.write(table([['VARIABLE', 'VALUE', 'SOURCE'], ...rows], terminal.style.bold));
        for (const { name, intended } of nearMisses)
          terminal.stderr.write(terminal.style.yellow(`unknown variable ${name}; did you mean ${intended}?\n`));
        terminal.stderr.write(terminal.style.green('The configuration is valid.\n'));
        return EXIT.ok;
      }),
    );
}
