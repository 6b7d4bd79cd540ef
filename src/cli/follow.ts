import { type AgentdClient, type FinalStatus, isBuiltInEvent, isFinalStatus } from '../client/index.js';
import type { EventPrinter } from './event-printer.js';

/**
 * Prints a run's events to its `end` (resuming across failures: the client's event stream)
 * and returns its final status; null only if it is not final after all.
 */
export async function follow(
  client: AgentdClient,
  runId: string,
  printer: EventPrinter,
  options: { readonly after?: string; readonly signal?: AbortSignal } = {},
): Promise<FinalStatus | null> {
  let status: FinalStatus | null = null;
  try {
    for await (const event of client.events(runId, options)) {
      printer.event(event);
      if (isBuiltInEvent(event) && event.type === 'end') status = event.data.status;
    }
    if (status === null) {
      // Nothing came after `after`: the caller had the end already. The record says how it ended.
      const run = await client.getRun(runId, { signal: options.signal });
      if (isFinalStatus(run.status)) status = run.status;
    }
  } catch (error) {
    printer.stop();
    throw error;
  }
  printer.finish(status);
  return status;
}

/**
 * Runs `body` with Ctrl-C handled: the first one calls `onFirst` (when given), the next (or
 * the first, without `onFirst`) aborts the signal `body` got. Restores the default afterwards.
 */
export async function withInterrupts<T>(body: (signal: AbortSignal) => Promise<T>, onFirst?: () => void): Promise<T> {
  const controller = new AbortController();
  let count = 0;
  const onSigint = () => {
    count += 1;
    if (count === 1 && onFirst !== undefined) onFirst();
    else controller.abort(new Interrupted());
  };
  process.on('SIGINT', onSigint);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The reason of an abort by Ctrl-C. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'Interrupted';
  }
}
