/**
 * `agentd/client`: a typed client of agentd's HTTP API for Node 20 and browsers, with event
 * streams that resume by themselves. It loads no server code: its only imports from the rest
 * of agentd are types (the contract's shapes, `domain/wire.ts`).
 *
 *     const agentd = createClient({ url: 'http://127.0.0.1:3000', apiKey: process.env.AGENTD_API_KEY });
 *     const run = await agentd.createRun({ agent: 'echo', input: 'hi' });
 *     for await (const event of agentd.events(run.id)) console.log(event.type, event.data);
 */
export { createClient } from './client.js';
export type { AdminClient, AgentdClient, ClientOptions, CreateRunOptions, RequestOptions, WaitOptions } from './client.js';
export { AgentdError } from './errors.js';
export type { ClientErrorCode } from './errors.js';
export { RunEventStream } from './event-stream.js';
export type { EventsOptions } from './event-stream.js';
export { DEFAULT_RETRY_POLICY } from './retry.js';
export type { RetryPolicy } from './retry.js';
export { RunList } from './run-list.js';
export type { ListRunsOptions } from './run-list.js';
export { compareEventIds, FINAL_STATUSES, isBuiltInEvent, isFinalStatus, parseEventId } from './vocabulary.js';
export type { RunError } from '../domain/run.js';
export type { FinalStatus, RunStatus } from '../domain/run-status.js';
export type { AgentEventType, BuiltInEventType, CustomEventType, EventType } from '../domain/run-event.js';
export type {
  AgentView as Agent,
  CancelView as CancelResult,
  CapacityView as Capacity,
  CreatedAccountView as CreatedAccount,
  CreateRunBody as CreateRunRequest,
  BuiltInEventView as BuiltInRunEvent,
  CustomEventView as CustomRunEvent,
  EventDataByType,
  EventView as RunEvent,
  RunPageView as RunPage,
  RunView as Run,
} from '../domain/wire.js';
