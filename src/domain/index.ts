/**
 * The run vocabulary: what every other floor of agentd speaks, and imports from here. This
 * folder imports nothing of agentd's (the lint enforces it).
 *
 * Glossary
 * - **run**: one execution of an agent for an account, from admission to its final status
 *   (`RunRecord`, `run-status.ts`: queued → running → completed | failed | cancelled |
 *   timed_out | interrupted). Its status changes only along the state machine.
 * - **slot**: a permit of this instance's run-slot limiter (MAX_CONCURRENT_AGENT_RUNS); a
 *   running run holds one, a queued run waits for one.
 * - **lease**: a row in `run_leases` that a queued or running run holds in the database; the
 *   tier and session limits count leases, across every instance.
 * - **instance**: one agentd process (INSTANCE_ID), with its own slots; runs record the
 *   instance that runs them.
 * - **event**: one thing a run said (`RunEvent`): an id `<ms>-<seq>` assigned by the runtime,
 *   the id of the run's previous event (`prev`, so readers see gaps), a type and its data as
 *   JSON text. The last event of every run is `end`.
 * - **fast stream**: a run's recent events in the event store (Redis or in-process), kept
 *   STREAM_TTL_SECONDS after the run ends; may lose events (trim, TTL, a Redis restart).
 * - **archive**: every accepted event in Postgres (`run_event_chunks`: a row per run per batch
 *   the archiver writes), what catch-up reads when the fast stream no longer has it.
 * - **event log**: the fast stream and the archive as one (`EventLog`): append to both, read
 *   from whichever continues the reader's chain.
 * - **follower**: one reader of a run's events (an SSE response): catch-up from the log, then
 *   live, exactly once and in order, until `end`.
 * - **cancel bus**: carries a cancel request to the instance that runs the run.
 * - **ending**: how a run ended (`RunEnding`): its final status and, unless it completed or
 *   was cancelled, the error.
 * - **webhook delivery**: the POST of a run's record to the URL it carries (`RunWebhook`),
 *   enqueued in the statement that ends the run and attempted by any instance until it is
 *   delivered or fails.
 */
export * from './agent.js';
export * from './cancel-bus.js';
export * from './chat.js';
export * from './errors.js';
export * from './event-chain.js';
export * from './event-id.js';
export * from './logger.js';
export * from './run.js';
export * from './run-ending.js';
export * from './run-event.js';
export * from './run-status.js';
export * from './webhook.js';
export * from './wire.js';
