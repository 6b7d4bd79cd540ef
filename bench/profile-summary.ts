/**
 * Summarises V8 CPU profiles (`node --cpu-prof`): self time by package / file and the hottest
 * functions. `node --import tsx bench/profile-summary.ts <file.cpuprofile>...`
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly totalMs: number;
  /** Self time by package (node_modules), agentd file (dist/...), node internals, or V8 pseudo-frames. */
  readonly byArea: Array<{ area: string; ms: number; share: number }>;
  readonly topFunctions: Array<{ fn: string; ms: number; share: number }>;
}

function area(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (modules !== null) return modules[1] as string;
  if (url.startsWith('node:')) return url;
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist !== null) return `agentd:${dist[1]}`;
  return basename(url);
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    total += us;
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const name =
      `${functionName || '(anonymous)'} ${url === '' ? '' : `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`}`.trim();
    fns.set(name, (fns.get(name) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, us]) => ({ key, ms: Math.round(us / 1000), share: Math.round((us / total) * 1000) / 10 }));
  return {
    file: basename(file),
    totalMs: Math.round(total / 1000),
    byArea: rank(areas).map(({ key, ms, share }) => ({ area: key, ms, share })),
    topFunctions: rank(fns).map(({ key, ms, share }) => ({ fn: key, ms, share })),
  };
}

export function formatSummary(summary: ProfileSummary): string {
  const lines = [`${summary.file}: ${summary.totalMs} ms sampled`, '  by area (self time):'];
  for (const a of summary.byArea.slice(0, 15)) lines.push(`    ${String(a.share).padStart(5)}%  ${String(a.ms).padStart(7)} ms  ${a.area}`);
  lines.push('  hottest functions (self time):');
  for (const f of summary.topFunctions.slice(0, 20))
    lines.push(`    ${String(f.share).padStart(5)}%  ${String(f.ms).padStart(7)} ms  ${f.fn}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const file of process.argv.slice(2)) console.log(formatSummary(summarizeProfile(file)));
}
