import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type CgroupLimits, countCpuset, readCgroupLimits } from '../../src/concurrency/cgroup.js';
import { detectMachine } from '../../src/concurrency/detect.js';
import {
  effectiveResources,
  redisClientsProblem,
  type Resources,
  sizeDbPool,
  sizeRedis,
  sizeRunSlots,
} from '../../src/concurrency/sizing.js';

const GIB = 1024 ** 3;

/** A fake cgroup mount in a temporary directory: `files` by path under it. */
async function cgroupTree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'agentd-cgroup-'));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), `${text}\n`);
  }
  return root;
}

const V1_SELF = '9:name=systemd:/\n4:memory:/process_api/abc\n3:cpuset:/\n2:cpu,cpuacct:/docker/c1\n0::/\n';
const trees: string[] = [];
after(async () => {
  for (const root of trees) await rm(root, { recursive: true, force: true });
});
const tree = async (files: Record<string, string>) => {
  const root = await cgroupTree(files);
  trees.push(root);
  return root;
};

describe('readCgroupLimits', () => {
  it('reads the limits at the root of a cgroup v2 mount', async () => {
    const root = await tree({ 'cgroup.controllers': 'cpu memory', 'cpu.max': '150000 100000', 'memory.max': String(GIB) });
    assert.deepEqual(await readCgroupLimits({ root, procSelfCgroup: '0::/\n' }), {
      version: 2,
      cpuQuota: { value: 1.5, file: join(root, 'cpu.max') },
      cpusetCpus: null,
      memoryBytes: { value: GIB, file: join(root, 'memory.max') },
    });
  });

  it("finds a limit on the process's nested cgroup v2 and on its ancestors, keeping the tightest", async () => {
    const root = await tree({
      'cgroup.controllers': 'cpu memory',
      'system.slice/memory.max': String(2 * GIB),
      'system.slice/cpu.max': '400000 100000',
      'system.slice/agentd.service/memory.max': 'max',
      'system.slice/agentd.service/cpu.max': '100000 100000',
      'system.slice/agentd.service/cpuset.cpus.effective': '0-2,5',
    });
    const limits = await readCgroupLimits({ root, procSelfCgroup: '0::/system.slice/agentd.service\n' });
    assert.deepEqual(limits, {
      version: 2,
      cpuQuota: { value: 1, file: join(root, 'system.slice/agentd.service/cpu.max') },
      cpusetCpus: { value: 4, file: join(root, 'system.slice/agentd.service/cpuset.cpus.effective') },
      memoryBytes: { value: 2 * GIB, file: join(root, 'system.slice/memory.max') },
    });
    // The root alone (what the reader used to look at) has none of these limits.
    assert.deepEqual(await readCgroupLimits({ root, procSelfCgroup: '' }), {
      version: 2,
      cpuQuota: null,
      cpusetCpus: null,
      memoryBytes: null,
    });
  });

  it('treats "max" in cgroup v2 as no limit and falls back to cpuset.cpus', async () => {
    const root = await tree({ 'cgroup.controllers': '', 'a/cpu.max': 'max 100000', 'a/memory.max': 'max', 'a/cpuset.cpus': '0-1' });
    assert.deepEqual(await readCgroupLimits({ root, procSelfCgroup: '0::/a' }), {
      version: 2,
      cpuQuota: null,
      cpusetCpus: { value: 2, file: join(root, 'a/cpuset.cpus') },
      memoryBytes: null,
    });
  });

  it('reads nested cgroup v1 controllers under their own mounts (cpu,cpuacct included)', async () => {
    const root = await tree({
      'memory/memory.limit_in_bytes': '9223372036854771712',
      'memory/process_api/abc/memory.limit_in_bytes': String(2 * GIB),
      'cpu,cpuacct/cpu.cfs_quota_us': '-1',
      'cpu,cpuacct/cpu.cfs_period_us': '100000',
      'cpu,cpuacct/docker/c1/cpu.cfs_quota_us': '50000',
      'cpu,cpuacct/docker/c1/cpu.cfs_period_us': '100000',
      'cpuset/cpuset.effective_cpus': '0-7',
    });
    assert.deepEqual(await readCgroupLimits({ root, procSelfCgroup: V1_SELF }), {
      version: 1,
      cpuQuota: { value: 0.5, file: join(root, 'cpu,cpuacct/docker/c1/cpu.cfs_quota_us') },
      cpusetCpus: { value: 8, file: join(root, 'cpuset/cpuset.effective_cpus') },
      memoryBytes: { value: 2 * GIB, file: join(root, 'memory/process_api/abc/memory.limit_in_bytes') },
    });
  });

  it('treats -1 and the 2^63-ish sentinel in cgroup v1 as no limit', async () => {
    const root = await tree({
      'cpu/cpu.cfs_quota_us': '-1',
      'cpu/cpu.cfs_period_us': '100000',
      'memory/memory.limit_in_bytes': '9223372036854771712',
    });
    assert.deepEqual(await readCgroupLimits({ root, procSelfCgroup: V1_SELF }), {
      version: 1,
      cpuQuota: null,
      cpusetCpus: null,
      memoryBytes: null,
    });
  });

  it("uses the mount's own limits when a cgroup namespace hides the host path", async () => {
    const root = await tree({
      'memory/memory.limit_in_bytes': String(GIB),
      'cpu/cpu.cfs_quota_us': '200000',
      'cpu/cpu.cfs_period_us': '100000',
    });
    const limits = await readCgroupLimits({ root, procSelfCgroup: '4:memory:/kubepods/pod1/c1\n1:cpu:/kubepods/pod1/c1\n' });
    assert.equal(limits?.memoryBytes?.value, GIB);
    assert.equal(limits?.cpuQuota?.value, 2);
  });

  it('returns null when there is no cgroup mount', async () => {
    assert.equal(await readCgroupLimits({ root: await tree({}), procSelfCgroup: V1_SELF }), null);
    assert.equal(await readCgroupLimits({ root: join(tmpdir(), 'agentd-no-such-cgroup'), procSelfCgroup: '' }), null);
  });

  it('counts cpuset lists', () => {
    assert.equal(countCpuset('0-3,8,10-11'), 7);
    assert.equal(countCpuset('5'), 1);
    assert.equal(countCpuset(''), null);
    assert.equal(countCpuset('3-1'), null);
    assert.equal(countCpuset('x'), null);
  });
});

describe('effectiveResources', () => {
  const host: Resources = { cpus: 8, memoryBytes: 16 * GIB };
  const v2 = (limits: Partial<CgroupLimits>): CgroupLimits => ({
    version: 2,
    cpuQuota: null,
    cpusetCpus: null,
    memoryBytes: null,
    ...limits,
  });
  const at = (value: number) => ({ value, file: '/sys/fs/cgroup/x' });

  it('keeps the host figures without limits, naming where they came from', () => {
    assert.deepEqual(effectiveResources({ host, cgroup: null, constrainedMemoryBytes: null }), {
      cpus: { value: 8, source: 'os.availableParallelism()' },
      memoryBytes: { value: 16 * GIB, source: 'os.totalmem()' },
    });
    assert.deepEqual(effectiveResources({ host, cgroup: v2({}), constrainedMemoryBytes: 0 }).memoryBytes.value, 16 * GIB);
  });

  it('lowers to the cgroup limits, rounding the CPU quota up, and names the file that won', () => {
    const figures = effectiveResources({ host, cgroup: v2({ cpuQuota: at(1.5), memoryBytes: at(GIB) }), constrainedMemoryBytes: null });
    assert.deepEqual(figures, {
      cpus: { value: 2, source: 'cgroup cpu.max /sys/fs/cgroup/x (1.5 cores)' },
      memoryBytes: { value: GIB, source: 'cgroup memory.max /sys/fs/cgroup/x' },
    });
    assert.equal(effectiveResources({ host, cgroup: v2({ cpuQuota: at(0.1) }), constrainedMemoryBytes: null }).cpus.value, 1);
  });

  it('takes the cpuset when it is tighter than the quota', () => {
    const cpus = effectiveResources({ host, cgroup: v2({ cpuQuota: at(4), cpusetCpus: at(3) }), constrainedMemoryBytes: null }).cpus;
    assert.deepEqual(cpus, { value: 3, source: 'cgroup cpuset /sys/fs/cgroup/x' });
  });

  it('lowers memory to process.constrainedMemory(), the cgroup file winning a tie', () => {
    const constrained = effectiveResources({ host, cgroup: v2({ memoryBytes: at(6 * GIB) }), constrainedMemoryBytes: 3 * GIB });
    assert.deepEqual(constrained.memoryBytes, { value: 3 * GIB, source: 'process.constrainedMemory()' });
    const tie = effectiveResources({ host, cgroup: { ...v2({ memoryBytes: at(3 * GIB) }), version: 1 }, constrainedMemoryBytes: 3 * GIB });
    assert.deepEqual(tie.memoryBytes, { value: 3 * GIB, source: 'cgroup memory.limit_in_bytes /sys/fs/cgroup/x' });
  });

  it('ignores a 0 or huge constrained memory', () => {
    assert.equal(effectiveResources({ host, cgroup: null, constrainedMemoryBytes: 0 }).memoryBytes.value, host.memoryBytes);
    assert.equal(effectiveResources({ host, cgroup: null, constrainedMemoryBytes: 2 ** 64 }).memoryBytes.value, host.memoryBytes);
  });

  it('never raises the host figures when the cgroup is bigger', () => {
    const figures = effectiveResources({
      host,
      cgroup: v2({ cpuQuota: at(64), memoryBytes: at(256 * GIB) }),
      constrainedMemoryBytes: 512 * GIB,
    });
    assert.deepEqual([figures.cpus.value, figures.memoryBytes.value], [host.cpus, host.memoryBytes]);
  });
});

describe('run slots in a cgroup-limited process', () => {
  it('follow the limits of its own nested cgroup', async () => {
    const root = await tree({
      'cgroup.controllers': 'cpu memory',
      'agentd.slice/cpu.max': '100000 100000',
      'agentd.slice/memory.max': String(2 * GIB),
    });
    const machine = await detectMachine({ root, procSelfCgroup: '0::/agentd.slice\n' });
    assert.equal(machine.effective.cpus, 1);
    assert.equal(machine.figures.memoryBytes.source, `cgroup memory.max ${join(root, 'agentd.slice/memory.max')}`);
    assert.deepEqual(sizeRunSlots(machine.effective, 200), { value: 10, source: 'auto', boundBy: 'cpus' });
    assert.deepEqual(sizeRunSlots(machine.effective, 512), { value: 4, source: 'auto', boundBy: 'memory' });
  });

  it('follow a cgroup v1 memory limit', async () => {
    const root = await tree({ 'memory/process_api/abc/memory.limit_in_bytes': String(GIB), 'cpu,cpuacct/cpu.cfs_quota_us': '-1' });
    const machine = await detectMachine({ root, procSelfCgroup: V1_SELF });
    assert.equal(machine.effective.memoryBytes, GIB);
    assert.deepEqual(sizeRunSlots(machine.effective, 200), { value: 5, source: 'auto', boundBy: 'memory' });
  });
});

describe('sizeRunSlots', () => {
  it('is CPU-bound on a 2-core / 24 GiB host', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256), { value: 20, source: 'auto', boundBy: 'cpus' });
  });

  it('is CPU-bound on a 32-core / 128 GiB host', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 128 * GIB }, 256), { value: 320, source: 'auto', boundBy: 'cpus' });
  });

  it('is memory-bound when memory is short', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 2 * GIB }, 256), { value: 8, source: 'auto', boundBy: 'memory' });
    assert.deepEqual(sizeRunSlots({ cpus: 4, memoryBytes: 100 * 1024 * 1024 }, 256), { value: 1, source: 'auto', boundBy: 'memory' });
  });

  it('caps at 2000', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 512, memoryBytes: 1024 * GIB }, 256), { value: 2000, source: 'auto', boundBy: 'cap' });
  });

  it('gives each of WORKERS processes its share of the machine, at most 2000 each', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 128 * GIB }, 256, undefined, 32), {
      value: 10,
      source: 'auto',
      boundBy: 'cpus',
    });
    assert.deepEqual(sizeRunSlots({ cpus: 32, memoryBytes: 2 * GIB }, 256, undefined, 3), { value: 2, source: 'auto', boundBy: 'memory' });
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 100 * 1024 * 1024 }, 256, undefined, 2), {
      value: 1,
      source: 'auto',
      boundBy: 'memory',
    });
    assert.deepEqual(sizeRunSlots({ cpus: 512, memoryBytes: 1024 * GIB }, 256, undefined, 2), {
      value: 2000,
      source: 'auto',
      boundBy: 'cap',
    });
  });

  it('lets MAX_CONCURRENT_AGENT_RUNS win, per process', () => {
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 7, 4), { value: 7, source: 'env', boundBy: 'env' });
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 5000), { value: 5000, source: 'env', boundBy: 'env' });
    assert.deepEqual(sizeRunSlots({ cpus: 2, memoryBytes: 24 * GIB }, 256, 3), { value: 3, source: 'env', boundBy: 'env' });
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
    assert.deepEqual(sizeRedis({ runSlots: 20 }), {
      connections: { value: 2, source: 'auto' },
      commandsQueueMax: { value: 10000, source: 'auto' },
    });
    assert.deepEqual(sizeRedis({ runSlots: 2000 }).commandsQueueMax, { value: 100000, source: 'auto' });
  });

  it('lets REDIS_COMMANDS_QUEUE_MAX win', () => {
    assert.deepEqual(sizeRedis({ runSlots: 320, commandsQueueMaxOverride: 500 }).commandsQueueMax, { value: 500, source: 'env' });
  });
});

describe('redisClientsProblem', () => {
  it('counts 2 connections per process of every instance: DB_INSTANCES × WORKERS × 2', () => {
    assert.equal(redisClientsProblem({ serverMaxClients: 8, instances: 4, processes: 1 }), null);
    assert.match(redisClientsProblem({ serverMaxClients: 7, instances: 4, processes: 1 }) ?? '', /maxclients is 7 .* need 8 connections/);
    assert.equal(redisClientsProblem({ serverMaxClients: 64, instances: 4, processes: 8 }), null);
    const problem = redisClientsProblem({ serverMaxClients: 63, instances: 4, processes: 8 });
    assert.match(problem ?? '', /4 agentd instances \(DB_INSTANCES\) of 8 processes each \(WORKERS\) need 64 connections/);
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
