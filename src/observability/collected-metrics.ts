import { Counter, Gauge, type Aggregator, type Registry } from 'prom-client';

/**
 * A gauge read from its owner at each scrape (a getter), so the owner keeps a plain number
 * and the hot path pays nothing. `aggregator` says how a cluster scrape combines the workers'
 * values (default `sum`).
 */
export function collectedGauge(registry: Registry, name: string, help: string, read: () => number, aggregator?: Aggregator): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    ...(aggregator === undefined ? {} : { aggregator }),
    collect() {
      this.set(read());
    },
  });
}

/**
 * A counter read from a count its owner keeps (a plain number incremented where the thing
 * happens, per batch or per event), taken up to it at each scrape. The count only grows.
 */
export function collectedCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  let reported = 0;
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const value = read();
      if (value > reported) this.inc(value - reported);
      reported = value;
    },
  });
}

/**
 * The child of a labelled metric for each combination of label values, created once and kept:
 * `metric.labels(...)` hashes its labels on every call. Only for label values from a bounded
 * set (agent names, statuses, route patterns), which bounds the cache too.
 */
export function boundChildren<T>(bind: (...values: string[]) => T): (...values: string[]) => T {
  const children = new Map<string, T>();
  return (...values) => {
    const key = values.join('\u0000');
    let child = children.get(key);
    if (child === undefined) {
      child = bind(...values);
      children.set(key, child);
    }
    return child;
  };
}
