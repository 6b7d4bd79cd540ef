import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readCgroupLimits } from '../../src/concurrency/cgroup.js';
import { detectMachine } from '../../src/concurrency/detect.js';
import { effectiveResources, type Resources, sizeDbPool, sizeRedis, sizeRunSlots } from '../../src/concurrency/sizing.js';

const GIB = 1024 ** 3;
const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/cgroup/${name}`, import.meta.url));

describe('readCgroupLimits', () => {
  it('reads a limited cgroup v2 root', async () => {
    assert.deepEqual(await readCgroupLimits(fixture('v2-limited')), {
      version: 2,
      cpuLimit: 1.5,
      memoryLimitBytes: 1 * GIB,
    });
  });

  it('treats "max" in cgroup v2 as no limit', async () => {
    assert.deepEqual(await readCgroupLimits(fixture('v2-max')), {
      version: 2,
      cpuLimit: null,
      memoryLimitBytes: null,
    });
  });

  it('reads a limited cgroup v1 root', async () => {
    assert.deepEqual(await readCgroupLimits(fixture('v1-limited')), {
      version: 1,
      cpuLimit: 2,
      memoryLimitBytes: 2 * GIB,
    });
  });

  it('treats -1 and 2^63-ish values in cgroup v1 as no limit', async () => {
    assert.deepEqual(await readCgroupLimits(fixture('v1-unlimited')), {
      version: 1,
      cpuLimit: null,
      memoryLimitBytes: null,
    });
  });

  it('returns null when there are no cgroup files', async () => {
    assert.equal(await readCgroupLimits(fixture('empty')), null);
    assert.equal(await readCgroupLimits(fixture('does-not-exist')), null);
  });
});

describe('effectiveResources', () => {
  const host: Resources = { cpus: 8, memoryBytes: 16 * GIB };

  it('keeps the host figures without limits', () => {
    assert.deepEqual(effectiveResources(host, null, null), host);
    assert.deepEqual(effectiveResources(host, { version: 2, cpuLimit: null, memoryLimitBytes: null }, 0), host);
  });

  it('lowers to the cgroup limits, rounding the CPU quota up', () => {
    assert.deepEqual(effectiveResources(host, { version: 2, cpuLimit: 1.5, memoryLimitBytes: 1 * GIB }, null), {
      cpus: 2,
      memoryBytes: 1 * GIB,
    });
    assert.equal(effectiveResources(host, { version: 2, cpuLimit: 0.1, memoryLimitBytes: null }, null).cpus, 1);
  });

  it('lowers memory to process.constrainedMemory()', () => {
    assert.equal(effectiveResources(host, null, 4 * GIB).memoryBytes, 4 * GIB);
    assert.equal(effectiveResources(host, { version: 1, cpuLimit: null, memoryLimitBytes: 6 * GIB }, 3 * GIB).memoryBytes, 3 * GIB);
  });

  it('ignores a 0 or huge constrained memory', () => {
    assert.equal(effectiveResources(host, null, 0).memoryBytes, host.memoryBytes);
    assert.equal(effectiveResources(host, null, 2 ** 64).memoryBytes, host.memoryBytes);
  });

  it('never raises the host figures when the cgroup is bigger', () => {
    assert.deepEqual(effectiveResources(host, { version: 1, cpuLimit: 64, memoryLimitBytes: 256 * GIB }, 512 * GIB), host);
  });
});

describe('sizeRunSlots', () => {
  it('is CPU-bound on a 2-core / 24 GiB host', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256), { value: 20, source: 'auto' });
  });

  it('is CPU-bound on a 32-core / 128 GiB host', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 128 * GIB }, 256), { value: 320, source: 'auto' });
  });

  it('is memory-bound when memory is short', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 2 * GIB }, 256), { value: 8, source: 'auto' });
    assert.deepEqual(sizeRunSlots({ cpus: 4, memoryBytes: 100 * 1024 * 1024 }, 256), { value: 1, source: 'auto' });
  });

  it('caps at 2000', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 512, memoryBytes: 1024 * GIB }, 256), { value: 2000, source: 'auto' });
  });

  it('gives each of WORKERS processes its share of the machine, at most 2000 each', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 128 * GIB }, 256, undefined, 32), { value: 10, source: 'auto' });
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 2 * GIB }, 256, undefined, 3), { value: 2, source: 'auto' });
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 100 * 1024 * 1024 }, 256, undefined, 2), { value: 1, source: 'auto' });
    assert.deepEqual(sizeRunSlots({ cpus: 512, memoryBytes: 1024 * GIB }, 256, undefined, 2), { value: 2000, source: 'auto' });
  });

  it('lets MAX_CONCURRENT_AGENT_RUNS win, per process', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 7, 4), { value: 7, source: 'env' });
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 5000), { value: 5000, source: 'env' });
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 3), { value: 3, source: 'env' });
  });

  it('rejects a nonsensical override', () => {
    assert.throws(() => sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 0), /MAX_CONCURRENT_AGENT_RUNS/);
  });
});

describe('sizeDbPool', () => {
  it('keeps 4 instances within max_connections minus reserved', () => {
    for (const runSlots of [1, 20, 64, 320, 2000]) {
      const pool = sizeDbPool({ runSlots, serverMaxConnections: 100, reservedConnections: 3, instances: 4 });
      assert.equal(pool.source, 'auto');
      assert.ok(pool.value >= 1);
      assert.ok(pool.value * 4 <= 100 - 3, `runSlots ${runSlots}: ${pool.value} × 4 > 97`);
    }
  });

  it('derives from run slots when the server has room', () => {
    const base = { serverMaxConnections: 1000, reservedConnections: 3, instances: 4 };
    assert.equal(sizeDbPool({ ...base, runSlots: 1 }).value, 4);
    assert.equal(sizeDbPool({ ...base, runSlots: 20 }).value, 10);
    assert.equal(sizeDbPool({ ...base, runSlots: 2000 }).value, 32);
  });

  it('counts each of WORKERS processes as an instance', () => {
    for (const processes of [2, 8, 64]) {
      const pool = sizeDbPool({ runSlots: 320, serverMaxConnections: 100, reservedConnections: 3, instances: 4, processes });
      assert.equal(pool.value, Math.max(1, Math.floor((97 * 0.9) / (4 * processes))));
    }
    assert.equal(sizeDbPool({ runSlots: 20, serverMaxConnections: 1000, reservedConnections: 3, instances: 1, processes: 4 }).value, 10);
  });

  it('lets DB_MAX_CONNECTIONS win', () => {
    assert.deepEqual(sizeDbPool({ runSlots: 20, serverMaxConnections: 100, reservedConnections: 3, instances: 4, override: 50 }), {
      value: 50,
      source: 'env',
    });
  });

  it('gives at least 1 on tiny servers', () => {
    assert.equal(sizeDbPool({ runSlots: 20, serverMaxConnections: 5, reservedConnections: 3, instances: 4 }).value, 1);
    assert.equal(sizeDbPool({ runSlots: 20, serverMaxConnections: 3, reservedConnections: 3, instances: 4 }).value, 1);
  });
});

describe('sizeRedis', () => {
  it('uses 2 connections and max(10000, runSlots × 50) by default', () => {
    assert.deepEqual(sizeRedis({ runSlots: 20, serverMaxClients: 10000, instances: 4 }), {
      connections: { value: 2, source: 'auto' },
      commandsQueueMax: { value: 10000, source: 'auto' },
    });
    assert.deepEqual(sizeRedis({ runSlots: 2000, serverMaxClients: null, instances: 4 }).commandsQueueMax, {
      value: 100000,
      source: 'auto',
    });
  });

  it('lets REDIS_COMMANDS_QUEUE_MAX win', () => {
    assert.deepEqual(sizeRedis({ runSlots: 320, serverMaxClients: null, instances: 4, commandsQueueMaxOverride: 500 }).commandsQueueMax, {
      value: 500,
      source: 'env',
    });
  });

  it('throws when instances × connections exceed maxclients', () => {
    assert.doesNotThrow(() => sizeRedis({ runSlots: 20, serverMaxClients: 8, instances: 4 }));
    assert.throws(() => sizeRedis({ runSlots: 20, serverMaxClients: 7, instances: 4 }), /maxclients/);
  });
});

describe('detectMachine', () => {
  it('returns positive numbers on this machine', async () => {
    const machine = await detectMachine();
    for (const resources of [machine.host, machine.effective]) {
      assert.ok(Number.isInteger(resources.cpus) && resources.cpus >= 1, `cpus ${resources.cpus}`);
      assert.ok(resources.memoryBytes > 0, `memoryBytes ${resources.memoryBytes}`);
    }
    assert.ok(machine.effective.cpus <= machine.host.cpus);
    assert.ok(machine.effective.memoryBytes <= machine.host.memoryBytes);
    assert.ok(machine.constrainedMemoryBytes === null || machine.constrainedMemoryBytes > 0);
  });
});
