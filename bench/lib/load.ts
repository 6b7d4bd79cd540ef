import { readdirSync, readFileSync } from 'node:fs';

/**
 * What else the machine was doing: CPU used by processes that are neither this bench (nor its
 * descendants, nor the peers it started) nor Postgres backends serving the bench's databases. Other engineers share
 * these 2 cores; a figure measured next to a busy neighbour says so in the results.
 */
interface Snapshot {
  readonly atMs: number;
  readonly ticks: Map<number, { ticks: number; ours: boolean }>;
}

function processes(): Map<number, { ppid: number; ticks: number; cmd: string }> {
  const all = new Map<number, { ppid: number; ticks: number; cmd: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      all.set(Number(entry), { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]), cmd });
    } catch {
      // gone while we looked
    }
  }
  return all;
}

/**
 * CPU ticks of every process, each marked as the bench's when it descends from this process or
 * its command line holds one of `ourMarkers` (the bench's database names: their Postgres
 * backends; the peers' folder). Another engineer's bench on the same server is not ours.
 */
export function snapshot(ourMarkers: readonly string[] = ['agentd_bench_', '/bench/peers/']): Snapshot {
  const all = processes();
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 50; hops += 1) {
      if (p === process.pid) return true;
      const info = all.get(p);
      if (info === undefined) return false;
      if (ourMarkers.some((marker) => info.cmd.includes(marker))) return true;
      p = info.ppid;
    }
    return false;
  };
  const ticks = new Map<number, { ticks: number; ours: boolean }>();
  for (const [pid, info] of all) ticks.set(pid, { ticks: info.ticks, ours: ours(pid) });
  return { atMs: Date.now(), ticks };
}

/** Cores used between two snapshots by the bench's processes and by everything else. */
export function cpuBetween(before: Snapshot, after: Snapshot): { ours: number; others: number; busiestOther: string } {
  const seconds = Math.max(0.001, (after.atMs - before.atMs) / 1000);
  let ours = 0;
  let others = 0;
  let busiest = { pid: 0, ticks: 0 };
  for (const [pid, now] of after.ticks) {
    const delta = now.ticks - (before.ticks.get(pid)?.ticks ?? 0);
    if (delta <= 0) continue;
    if (now.ours) ours += delta;
    else {
      others += delta;
      if (delta > busiest.ticks) busiest = { pid, ticks: delta };
    }
  }
  let busiestOther = '';
  if (busiest.pid !== 0) {
    try {
      busiestOther = readFileSync(`/proc/${busiest.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim().slice(0, 80);
    } catch {
      busiestOther = `pid ${busiest.pid}`;
    }
  }
  return { ours: Math.round((ours / 100 / seconds) * 100) / 100, others: Math.round((others / 100 / seconds) * 100) / 100, busiestOther };
}
