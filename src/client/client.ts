import type { AgentView, CancelView, CapacityView, CreatedAccountView, CreateRunBody, RunView } from '../domain/wire.js';
import { AgentdError } from './errors.js';
import { type EventsOptions, RunEventStream } from './event-stream.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
import { type ListRunsOptions, RunList } from './run-list.js';
import { newIdempotencyKey, Transport } from './transport.js';
import { isFinalStatus } from './vocabulary.js';

export interface ClientOptions {
  /** agentd's base URL, e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  /** The account's API key, for `/v1/*`. */
  readonly apiKey?: string;
  /** ADMIN_TOKEN, for `admin.*` (`/v1/admin/*`). */
  readonly adminToken?: string;
  /** Default: the global `fetch` (Node 20, browsers). */
  readonly fetch?: typeof fetch;
  /** Overrides of DEFAULT_RETRY_POLICY. */
  readonly retry?: Partial<RetryPolicy>;
  /** Headers sent with every request. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

export interface CreateRunOptions extends RequestOptions {
  /** Sent as Idempotency-Key; default a new random UUID per call, so the call's own retries return the same run. */
  readonly idempotencyKey?: string;
}

export interface WaitOptions extends CreateRunOptions, Pick<EventsOptions, 'idleTimeoutMs'> {}

/** A client of agentd's HTTP API (docs/API.md). Every method rejects with an AgentdError (or the signal's reason). */
export interface AgentdClient {
  /** Starts a run (POST /v1/runs): 202 at once, `queued` or `running`. Retried with the same Idempotency-Key. */
  createRun(request: CreateRunBody, options?: CreateRunOptions): Promise<RunView>;
  /** The run now (GET /v1/runs/:id). */
  getRun(runId: string, options?: RequestOptions): Promise<RunView>;
  /** The account's runs, newest first, paged as iterated. */
  listRuns(options?: ListRunsOptions): RunList;
  /** Asks the run to stop (idempotent); a finished run keeps its status. */
  cancel(runId: string, options?: RequestOptions): Promise<CancelView>;
  /**
   * The run once it has ended. Given a run id, it follows the run's events to their `end`; given
   * a request, it starts the run with POST /v1/runs/wait (or, where agentd has no such route,
   * POST /v1/runs then the events' `end`).
   */
  waitForRun(run: string | CreateRunBody, options?: WaitOptions): Promise<RunView>;
  /** The run's events, each once, in order, to its `end`, resumed across failures (see RunEventStream). */
  events(runId: string, options?: EventsOptions): RunEventStream;
  /** The agents this agentd runs (GET /v1/agents). */
  listAgents(options?: RequestOptions): Promise<AgentView[]>;
  /** Admin calls (`/v1/admin/*`, with `adminToken`). */
  readonly admin: AdminClient;
}

export interface AdminClient {
  /** A new account and its API key, which is shown this once (POST /v1/admin/accounts). Not retried after a connection failure. */
  createAccount(account: { readonly name: string; readonly tier: string }, options?: RequestOptions): Promise<CreatedAccountView>;
  /** The answering instance's sizing and live use (GET /v1/admin/capacity). */
  capacity(options?: RequestOptions): Promise<CapacityView>;
}

const runPath = (runId: string) => `/v1/runs/${encodeURIComponent(runId)}`;

/** A client for the agentd at `url`. Works in Node 20 and browsers (fetch, ReadableStream). */
export function createClient(options: ClientOptions): AgentdClient {
  const transport = new Transport({
    url: options.url,
    apiKey: options.apiKey,
    adminToken: options.adminToken,
    fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
    retry: Object.freeze({ ...DEFAULT_RETRY_POLICY, ...options.retry }),
    headers: { ...options.headers },
  });
  const get = <T>(path: string, signal: AbortSignal | undefined, credential: 'apiKey' | 'adminToken' = 'apiKey') =>
    transport.json<T>({ method: 'GET', path, credential, signal, idempotent: true });
  const createRun = (request: CreateRunBody, { idempotencyKey = newIdempotencyKey(), signal }: CreateRunOptions = {}) =>
    transport.json<RunView>({
      method: 'POST',
      path: '/v1/runs',
      credential: 'apiKey',
      body: request,
      headers: { 'idempotency-key': idempotencyKey },
      signal,
      idempotent: true,
    });
  const client: AgentdClient = {
    createRun,
    getRun: (runId, { signal } = {}) => get<RunView>(runPath(runId), signal),
    listRuns: (listOptions = {}) => new RunList(transport, listOptions),
    cancel: (runId, { signal } = {}) =>
      transport.json<CancelView>({ method: 'POST', path: `${runPath(runId)}/cancel`, credential: 'apiKey', signal, idempotent: true }),
    events: (runId, eventsOptions = {}) => new RunEventStream(transport, runId, eventsOptions),
    async waitForRun(run, waitOptions = {}) {
      if (typeof run === 'string') return waitForEnd(client, run, waitOptions);
      const idempotencyKey = waitOptions.idempotencyKey ?? newIdempotencyKey();
      const waited = await startAndWait(transport, run, idempotencyKey, waitOptions.signal);
      if (waited !== null && isFinalStatus(waited.status)) return waited;
      // The same key: a run the wait route admitted before it gave up is the one created here.
      const created = waited ?? (await createRun(run, { idempotencyKey, signal: waitOptions.signal }));
      return waitForEnd(client, created.id, waitOptions);
    },
    listAgents: async ({ signal } = {}) => (await get<{ agents: AgentView[] }>('/v1/agents', signal)).agents,
    admin: {
      createAccount: (account, { signal } = {}) =>
        transport.json<CreatedAccountView>({
          method: 'POST',
          path: '/v1/admin/accounts',
          credential: 'adminToken',
          body: account,
          signal,
          idempotent: false,
        }),
      capacity: ({ signal } = {}) => get<CapacityView>('/v1/admin/capacity', signal, 'adminToken'),
    },
  };
  return client;
}

/** POST /v1/runs/wait; null when this agentd has no such route (404 `not_found`). */
async function startAndWait(
  transport: Transport,
  request: CreateRunBody,
  idempotencyKey: string,
  signal?: AbortSignal,
): Promise<RunView | null> {
  try {
    return await transport.json<RunView>({
      method: 'POST',
      path: '/v1/runs/wait',
      credential: 'apiKey',
      body: request,
      headers: { 'idempotency-key': idempotencyKey },
      signal,
      idempotent: true,
    });
  } catch (error) {
    if (error instanceof AgentdError && error.status === 404 && error.code === 'not_found') return null;
    throw error;
  }
}

/** The run once final: at once if it is, else after its events' `end` (agentd records the status before it sends `end`). */
async function waitForEnd(client: AgentdClient, runId: string, options: WaitOptions): Promise<RunView> {
  const { signal, idleTimeoutMs } = options;
  const run = await client.getRun(runId, { signal });
  if (isFinalStatus(run.status)) return run;
  for await (const event of client.events(runId, { signal, idleTimeoutMs })) {
    if (event.type === 'end') break;
  }
  const ended = await client.getRun(runId, { signal });
  if (!isFinalStatus(ended.status)) {
    throw new AgentdError('invalid_response', `Run ${runId} sent its end but is still ${ended.status}.`);
  }
  return ended;
}
