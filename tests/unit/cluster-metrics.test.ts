import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Counter, Gauge, Registry } from 'prom-client';
import { MetricsUnavailableError } from '../../src/domain/index.js';
import {
  ClusterMetricsPrimary,
  ClusterMetricsWorker,
  type MetricsPeer,
  type WorkerChannel,
} from '../../src/observability/cluster-metrics.js';
import { metricSum, parseMetrics } from '../helpers/metrics.js';

/**
 * A worker process wired to the primary as node:cluster would (messages cross asynchronously,
 * as JSON): `peer` is the Worker the primary sees, `channel` the worker's own process.
 */
class FakeWorker {
  connected = true;
  /** When set, what the primary sends goes here instead of to the worker (a worker that hangs, or exits). */
  intercept: (() => void) | undefined;
  private readonly inbox = new EventEmitter();
  readonly peer: MetricsPeer;
  readonly channel: WorkerChannel;

  constructor(primary: ClusterMetricsPrimary) {
    this.peer = {
      send: (message, callback) => {
        const copy: unknown = JSON.parse(JSON.stringify(message));
        setImmediate(() => {
          if (this.intercept === undefined) this.inbox.emit('message', copy);
          else this.intercept();
          callback(null);
        });
      },
      isConnected: () => this.connected,
    };
    this.channel = {
      send: (message, callback) => {
        const copy: unknown = JSON.parse(JSON.stringify(message));
        setImmediate(() => {
          primary.onMessage(this.peer, copy);
          callback(null);
        });
      },
      isConnected: () => this.connected,
      on: (event, listener) => this.inbox.on(event, listener),
      off: (event, listener) => this.inbox.off(event, listener),
    };
  }
}

/** A worker's registry: a counter, a gauge summed, and one that every worker reports alike. */
function workerRegistry(runs: number, slots: number): Registry {
  const registry = new Registry();
  new Counter({ name: 'runs_total', help: 'h', registers: [registry] }).inc(runs);
  new Gauge({ name: 'slots', help: 'h', registers: [registry] }).set(slots);
  new Gauge({ name: 'build_info', help: 'h', labelNames: ['version'], aggregator: 'first', registers: [registry] }).set(
    { version: '1.2.3' },
    1,
  );
  return registry;
}

const noError = { onError: (error: unknown) => assert.fail(`unexpected error ${String(error)}`) };
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('cluster metrics', () => {
  it('answers a scrape of either worker with the sum over every ready worker, build info once', async () => {
    const primary = new ClusterMetricsPrimary(noError);
    const [a, b] = [new FakeWorker(primary), new FakeWorker(primary)];
    const sourceA = new ClusterMetricsWorker(workerRegistry(3, 10), a.channel, noError).start();
    const sourceB = new ClusterMetricsWorker(workerRegistry(4, 10), b.channel, noError).start();
    for (const source of [sourceA, sourceB]) {
      const samples = parseMetrics(await source.metrics());
      assert.equal(metricSum(samples, 'runs_total'), 7);
      assert.equal(metricSum(samples, 'slots'), 20);
      assert.deepEqual(
        samples.filter((s) => s.name === 'build_info'),
        [{ name: 'build_info', labels: { version: '1.2.3' }, value: 1 }],
      );
    }
    await Promise.all([sourceA.close(), sourceB.close()]);
  });

  it('leaves out a worker that exits mid-scrape, and one that never said it is ready', async () => {
    const primary = new ClusterMetricsPrimary({ ...noError, timeoutMs: 60_000 });
    const [a, b, starting] = [new FakeWorker(primary), new FakeWorker(primary), new FakeWorker(primary)];
    const sourceA = new ClusterMetricsWorker(workerRegistry(3, 10), a.channel, noError).start();
    new ClusterMetricsWorker(workerRegistry(4, 10), b.channel, noError).start();
    await nextTurn(); // the ready messages arrive
    starting.intercept = () => assert.fail('a worker that never said ready is asked');
    b.intercept = () => {
      b.connected = false;
      primary.onExit(b.peer);
    };
    assert.equal(metricSum(parseMetrics(await sourceA.metrics()), 'runs_total'), 3);
    await sourceA.close();
  });

  it('fails the scrape with 503 metrics_unavailable when a ready worker does not answer', async () => {
    const primary = new ClusterMetricsPrimary({ ...noError, timeoutMs: 50 });
    const [a, hung] = [new FakeWorker(primary), new FakeWorker(primary)];
    const source = new ClusterMetricsWorker(workerRegistry(1, 1), a.channel, noError).start();
    new ClusterMetricsWorker(workerRegistry(1, 1), hung.channel, noError).start();
    await nextTurn();
    hung.intercept = () => undefined;
    await assert.rejects(source.metrics(), (error: unknown) => error instanceof MetricsUnavailableError && error.status === 503);
    await source.close();
  });

  it('fails a waiting scrape with 503 metrics_unavailable when the worker closes', async () => {
    const primary = new ClusterMetricsPrimary(noError);
    const a = new FakeWorker(primary);
    const source = new ClusterMetricsWorker(workerRegistry(1, 1), { ...a.channel, send: () => undefined }, noError).start();
    const scrape = source.metrics();
    await source.close();
    await assert.rejects(scrape, (error: unknown) => error instanceof MetricsUnavailableError && error.status === 503);
  });
});
