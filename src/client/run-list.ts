import type { RunStatus } from '../domain/run-status.js';
import type { RunPageView, RunView } from '../domain/wire.js';
import type { Transport } from './transport.js';

export interface ListRunsOptions {
  readonly status?: RunStatus;
  readonly agent?: string;
  readonly session_id?: string;
  /** Runs per page, 1-200; default 50 (agentd's). */
  readonly limit?: number;
  /** Start at this page (a `next_cursor` from an earlier page); default the newest runs. */
  readonly cursor?: string | null;
  readonly signal?: AbortSignal;
}

/**
 * The caller's runs, newest first, read a page at a time as it is iterated: `for await (const
 * run of list)` goes through every run, `list.pages()` through the pages, `list.page()` reads one.
 */
export class RunList implements AsyncIterable<RunView> {
  constructor(
    private readonly transport: Transport,
    private readonly options: ListRunsOptions = {},
  ) {}

  /** One page: the first one asked for, or the one at `cursor`. */
  page(cursor: string | null = this.options.cursor ?? null): Promise<RunPageView> {
    const { status, agent, session_id: sessionId, limit, signal } = this.options;
    const query = new URLSearchParams();
    if (status !== undefined) query.set('status', status);
    if (agent !== undefined) query.set('agent', agent);
    if (sessionId !== undefined) query.set('session_id', sessionId);
    if (limit !== undefined) query.set('limit', String(limit));
    if (cursor !== null) query.set('cursor', cursor);
    const text = query.toString();
    const search = text === '' ? '' : `?${text}`;
    return this.transport.json<RunPageView>({ method: 'GET', path: `/v1/runs${search}`, credential: 'apiKey', signal, idempotent: true });
  }

  /** Every page, from the first asked for to the last. */
  async *pages(): AsyncGenerator<RunPageView, void, undefined> {
    let cursor = this.options.cursor ?? null;
    do {
      const page = await this.page(cursor);
      yield page;
      cursor = page.next_cursor;
    } while (cursor !== null);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RunView> {
    for await (const page of this.pages()) yield* page.runs;
  }
}
