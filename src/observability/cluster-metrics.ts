import { AggregatorRegistry, type Registry } from 'prom-client';
import { z } from 'zod';
import { MetricsUnavailableError } from '../domain/index.js';

/**
 * /metrics in a cluster (WORKERS > 1). A scrape lands on whichever worker the primary hands
 * the connection to; that worker asks the primary (over the cluster's IPC channel), the
 * primary asks every worker that has said it is ready for its registry as JSON
 * (`getMetricsAsJSON`, what prom-client's `AggregatorRegistry.setRegistries` makes a worker
 * answer) and sums them with `AggregatorRegistry.aggregate`, each metric by its `aggregator`
 * (sum by default; `first` for build info, `max` for fleet-wide figures, prom-client's own
 * choices for the default metrics), and the asking worker answers with the text.
 *
 * Not prom-client's `clusterMetrics()`: it asks every connected worker, so a worker still
 * starting (or one that exits mid-scrape) makes every scrape wait 5 s and fail; and its
 * workers answer through module-level state set up by `new AggregatorRegistry()`.
 */

/** How long the primary waits for every ready worker's figures. */
const COLLECT_TIMEOUT_MS = 4_000;
/** How long a worker waits for the primary's answer (longer than the collection). */
const SCRAPE_TIMEOUT_MS = 5_000;

const message = z.discriminatedUnion('type', [
  z.object({ type: z.literal('agentd:metrics:ready') }),
  z.object({ type: z.literal('agentd:metrics:gone') }),
  z.object({ type: z.literal('agentd:metrics:scrape'), id: z.number() }),
  z.object({ type: z.literal('agentd:metrics:collect'), id: z.number() }),
  z.object({
    type: z.literal('agentd:metrics:part'),
    id: z.number(),
    metrics: z.array(z.unknown()).optional(),
    error: z.string().optional(),
  }),
  z.object({ type: z.literal('agentd:metrics:answer'), id: z.number(), text: z.string().optional(), error: z.string().optional() }),
]);
type Message = z.output<typeof message>;
type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** One end of the IPC channel: a cluster Worker seen from the primary, or the worker's own process. */
export interface MetricsPeer {
  send(message: Message, callback: (error: Error | null) => void): unknown;
  isConnected(): boolean;
}

interface Collection {
  readonly requester: MetricsPeer;
  readonly requestId: number;
  readonly waiting: Set<MetricsPeer>;
  readonly parts: MetricsJson[];
  readonly timer: NodeJS.Timeout;
}

/** The primary's side: gathers every ready worker's figures for the worker that was scraped. */
export class ClusterMetricsPrimary {
  private readonly ready = new Set<MetricsPeer>();
  private readonly collections = new Map<number, Collection>();
  private nextId = 1;

  private readonly onError: (error: unknown) => void;
  private readonly timeoutMs: number;

  /** `timeoutMs`: how long a scrape waits for every ready worker (default 4 s), then fails. */
  constructor(options: { readonly onError: (error: unknown) => void; readonly timeoutMs?: number }) {
    this.onError = options.onError;
    this.timeoutMs = options.timeoutMs ?? COLLECT_TIMEOUT_MS;
  }

  /** Handles a message from a worker; anything that is not about metrics is ignored. */
  onMessage(worker: MetricsPeer, raw: unknown): void {
    const parsed = message.safeParse(raw);
    if (!parsed.success) return;
    const m = parsed.data;
    if (m.type === 'agentd:metrics:ready') this.ready.add(worker);
    else if (m.type === 'agentd:metrics:gone') this.onExit(worker);
    else if (m.type === 'agentd:metrics:scrape') this.collect(worker, m.id);
    else if (m.type === 'agentd:metrics:part') this.receive(worker, m.id, m.metrics as MetricsJson | undefined, m.error);
  }

  /** A worker exited: it is asked no more, and no collection waits for it (its figures went with it). */
  onExit(worker: MetricsPeer): void {
    this.ready.delete(worker);
    for (const [id, collection] of this.collections) if (collection.waiting.delete(worker)) void this.settle(id);
  }

  /** Answers every collection under way with an error (the primary is stopping). */
  close(): void {
    for (const id of this.collections.keys()) void this.settle(id, 'the cluster primary is stopping');
  }

  private collect(requester: MetricsPeer, requestId: number): void {
    const id = this.nextId++;
    const waiting = new Set([...this.ready, requester].filter((worker) => worker.isConnected()));
    const timer = setTimeout(
      () => void this.settle(id, `${waiting.size} worker(s) did not answer within ${this.timeoutMs} ms`),
      this.timeoutMs,
    );
    this.collections.set(id, { requester, requestId, waiting, parts: [], timer });
    for (const worker of waiting) {
      worker.send({ type: 'agentd:metrics:collect', id }, (error) => {
        if (error === null) return;
        this.onError(error);
        // It cannot be asked: it is exiting, and its exit takes it out of the set.
      });
    }
    if (waiting.size === 0) void this.settle(id);
  }

  private receive(worker: MetricsPeer, id: number, metrics: MetricsJson | undefined, error: string | undefined): void {
    const collection = this.collections.get(id);
    if (collection === undefined || !collection.waiting.delete(worker)) return; // late, after a timeout
    if (metrics === undefined) return void this.settle(id, `a worker could not read its metrics: ${error ?? 'no reason given'}`);
    collection.parts.push(metrics);
    if (collection.waiting.size === 0) void this.settle(id);
  }

  /** Answers the collection's requester once nobody is left to wait for, or at once with `failure`. */
  private async settle(id: number, failure?: string): Promise<void> {
    const collection = this.collections.get(id);
    if (collection === undefined || (failure === undefined && collection.waiting.size > 0)) return;
    this.collections.delete(id);
    clearTimeout(collection.timer);
    let answer: Message;
    try {
      if (failure !== undefined) throw new Error(failure);
      const text = await AggregatorRegistry.aggregate(collection.parts).metrics();
      answer = { type: 'agentd:metrics:answer', id: collection.requestId, text };
    } catch (error) {
      answer = { type: 'agentd:metrics:answer', id: collection.requestId, error: error instanceof Error ? error.message : String(error) };
    }
    if (!collection.requester.isConnected()) return; // the scraped worker is gone; so is its client
    collection.requester.send(answer, (error) => {
      if (error !== null) this.onError(error);
    });
  }
}

/** The worker's end of the channel: the process, which in a cluster worker has `send`. */
export interface WorkerChannel extends MetricsPeer {
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** The channel of this process to its cluster primary; throws outside a cluster worker. */
export function primaryChannel(): WorkerChannel {
  if (process.send === undefined) throw new Error('not a cluster worker: no IPC channel to a primary');
  return {
    send: (m, callback) => process.send?.(m, undefined, undefined, callback),
    isConnected: () => process.connected,
    on: (event, listener) => process.on(event, listener),
    off: (event, listener) => process.off(event, listener),
  };
}

/**
 * A worker's side: answers the primary's requests for this worker's figures, and serves
 * /metrics (`metrics()`) with the sum over every worker, which it asks the primary for.
 */
export class ClusterMetricsWorker {
  readonly contentType: string;
  private readonly pending = new Map<number, { resolve(text: string): void; reject(error: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private started = false;
  private readonly onError: (error: unknown) => void;
  private readonly timeoutMs: number;

  /** `timeoutMs`: how long a scrape waits for the primary's answer (default 5 s, past the primary's own wait). */
  constructor(
    private readonly registry: Registry,
    private readonly channel: WorkerChannel,
    options: { readonly onError: (error: unknown) => void; readonly timeoutMs?: number },
  ) {
    this.contentType = registry.contentType;
    this.onError = options.onError;
    this.timeoutMs = options.timeoutMs ?? SCRAPE_TIMEOUT_MS;
  }

  /** Starts answering the primary and tells it this worker is ready to be asked. Idempotent. */
  start(): this {
    if (this.started) return this;
    this.started = true;
    this.channel.on('message', this.onMessage);
    this.send({ type: 'agentd:metrics:ready' });
    return this;
  }

  /** The text of every worker's metrics, summed; rejects with MetricsUnavailableError (503). */
  metrics(): Promise<string> {
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => this.answer(id, { error: `no answer from the cluster primary within ${this.timeoutMs} ms` }),
        this.timeoutMs,
      );
      this.pending.set(id, { resolve, reject, timer });
      this.send({ type: 'agentd:metrics:scrape', id }, (error) =>
        this.answer(id, { error: `cannot reach the cluster primary: ${error.message}` }),
      );
    });
  }

  /** Tells the primary to stop asking, stops answering and fails scrapes still waiting. Idempotent. */
  async close(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.send({ type: 'agentd:metrics:gone' }, () => undefined); // unsent, the primary forgets this worker when it exits
    this.channel.off('message', this.onMessage);
    for (const id of [...this.pending.keys()]) this.answer(id, { error: 'this worker is stopping' });
  }

  private readonly onMessage = (raw: unknown): void => {
    const parsed = message.safeParse(raw);
    if (!parsed.success) return;
    const m = parsed.data;
    if (m.type === 'agentd:metrics:answer') this.answer(m.id, m);
    else if (m.type === 'agentd:metrics:collect') {
      void this.registry.getMetricsAsJSON().then(
        (metrics) => this.send({ type: 'agentd:metrics:part', id: m.id, metrics }),
        (error: unknown) =>
          this.send({ type: 'agentd:metrics:part', id: m.id, error: error instanceof Error ? error.message : String(error) }),
      );
    }
  };

  private answer(id: number, answer: { text?: string; error?: string }): void {
    const waiting = this.pending.get(id);
    if (waiting === undefined) return;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    if (answer.text !== undefined) waiting.resolve(answer.text);
    else waiting.reject(new MetricsUnavailableError(answer.error ?? 'no reason given'));
  }

  private send(m: Message, onFailure: (error: Error) => void = this.onError): void {
    if (!this.channel.isConnected()) return onFailure(new Error('the IPC channel to the cluster primary is closed'));
    this.channel.send(m, (error) => {
      if (error !== null) onFailure(error);
    });
  }
}
