/**
 * Summarises a V8 heap snapshot (`--heapsnapshot-signal`): self size and count by constructor
 * name, largest first. `node --import tsx bench/heap-summary.ts <file.heapsnapshot> [top]`
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

export function summarizeHeap(
  file: string,
  top = 25,
): { totalBytes: number; rows: Array<{ name: string; type: string; count: number; bytes: number }> } {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const groups = new Map<string, { name: string; type: string; count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] ?? '?';
    const rawName = snap.strings[snap.nodes[i + nameAt] as number] ?? '?';
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : rawName.slice(0, 60);
    const bytes = snap.nodes[i + sizeAt] as number;
    total += bytes;
    const key = `${type}:${name}`;
    const group = groups.get(key) ?? { name, type, count: 0, bytes: 0 };
    group.count += 1;
    group.bytes += bytes;
    groups.set(key, group);
  }
  return { totalBytes: total, rows: [...groups.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top) };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const file = process.argv[2] as string;
  const { totalBytes, rows } = summarizeHeap(file, Number(process.argv[3] ?? 25));
  console.log(`${file}: ${(totalBytes / 1024 / 1024).toFixed(1)} MB of live objects`);
  for (const r of rows)
    console.log(`  ${(r.bytes / 1024 / 1024).toFixed(1).padStart(7)} MB ${String(r.count).padStart(9)}  ${r.type}: ${r.name}`);
}
