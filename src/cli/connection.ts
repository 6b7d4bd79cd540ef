import { type Command, Option } from 'commander';
import { type AgentdClient, createClient } from '../client/index.js';
import { CLI_ENV } from '../config/cli-env.js';
import { UsageError } from './exit-codes.js';

export const DEFAULT_URL = 'http://127.0.0.1:3000';

/** The options every command takes (before or after its name), each also read from its variable. */
export function connectionOptions(): Option[] {
  return [
    new Option('--url <url>', "agentd's base URL").env(CLI_ENV.url).default(DEFAULT_URL),
    new Option('--api-key <key>', "the account's API key (prefer the variable: a flag shows in `ps`)").env(CLI_ENV.apiKey),
    new Option('--admin-token <token>', 'ADMIN_TOKEN, for `accounts` and `capacity` (prefer the variable)').env(CLI_ENV.adminToken),
  ];
}

interface Connection {
  readonly url: string;
  readonly apiKey?: string;
  readonly adminToken?: string;
}

/** A client for the command's `--url`, with the credential it needs (a UsageError naming the flag and variable if missing). */
export function clientFor(command: Command, needs: 'apiKey' | 'adminToken'): AgentdClient {
  const { url, apiKey, adminToken } = command.optsWithGlobals<Connection>();
  if (needs === 'apiKey' && (apiKey ?? '') === '') throw new UsageError(`No API key: set ${CLI_ENV.apiKey} or pass --api-key.`);
  if (needs === 'adminToken' && (adminToken ?? '') === '')
    throw new UsageError(`No admin token: set ${CLI_ENV.adminToken} or pass --admin-token.`);
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url: "${url}" is not a URL like ${DEFAULT_URL}.`);
  }
  return createClient({ url, apiKey, adminToken, headers: { 'user-agent': 'agentd-cli' } });
}
