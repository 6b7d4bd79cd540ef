/** One line of the results table: a figure for agentd, its target, and the peers' figures. */
export interface Row {
  readonly scenario: string;
  readonly figure: string;
  readonly unit: string;
  readonly target?: { readonly op: '<=' | '>=' | '=='; readonly value: number };
  readonly agentd: number | string | null;
  /** Shown instead of `agentd` (e.g. the median with the spread of the passes); targets still judge `agentd`. */
  readonly display?: string;
  readonly peers?: { readonly queueHop?: number | string | null; readonly langgraph?: number | string | null };
  /** 'lower' when smaller is better (latency, memory), 'higher' for throughput. */
  readonly better?: 'lower' | 'higher';
  readonly note?: string;
}

export function targetMet(row: Row): boolean | null {
  if (row.target === undefined || typeof row.agentd !== 'number' || !Number.isFinite(row.agentd)) return null;
  const { op, value } = row.target;
  return op === '<=' ? row.agentd <= value : op === '>=' ? row.agentd >= value : row.agentd === value;
}

function format(value: number | string | null | undefined, unit: string): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  if (!Number.isFinite(value)) return String(value);
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = value.toLocaleString('en-US', { maximumFractionDigits: digits });
  return unit === '' ? text : `${text} ${unit}`;
}

/** How many times better agentd is than the peer (>1: agentd ahead). */
export function ratio(row: Row, peer: number | string | null | undefined): string {
  if (typeof peer !== 'number' || typeof row.agentd !== 'number' || row.better === undefined) return '';
  if (!Number.isFinite(peer) || !Number.isFinite(row.agentd) || peer === 0 || row.agentd === 0) return '';
  const r = row.better === 'lower' ? peer / row.agentd : row.agentd / peer;
  return ` (${r >= 10 ? r.toFixed(0) : r.toFixed(1)}×)`;
}

function cells(row: Row): string[] {
  const met = targetMet(row);
  const target =
    row.target === undefined
      ? ''
      : `${row.target.op === '<=' ? '≤' : row.target.op === '>=' ? '≥' : '='} ${format(row.target.value, row.unit)}`;
  const agentd = `${row.display ?? format(row.agentd, row.unit)}${met === null ? '' : met ? ' ✓' : ' ✗'}`;
  const qh = row.peers?.queueHop;
  const lg = row.peers?.langgraph;
  return [
    row.scenario,
    row.figure,
    target,
    agentd,
    qh === undefined ? '' : `${format(qh, row.unit)}${ratio(row, qh)}`,
    lg === undefined ? '' : `${format(lg, row.unit)}${ratio(row, lg)}`,
  ];
}

const HEADER = ['scenario', 'figure', 'target', 'agentd', 'queue-hop (BullMQ)', 'LangGraph dev 1.5'];

/** Cells of every row; an error repeated in the rows below its first one is shown once. */
function allCells(rows: readonly Row[]): string[][] {
  let previous: string[] = [];
  return rows.map((row) => {
    const current = cells(row);
    const shown = current.map((cell, c) => (cell.startsWith('error:') && previous[c] === cell ? '(same error)' : cell));
    previous = current;
    return shown;
  });
}

/** Plain-text table for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const body = allCells(rows);
  const all = [HEADER, ...body];
  const widths = HEADER.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join(' │ ');
  return [line(HEADER), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...body.map(line)].join('\n');
}

/** The same table in Markdown, for bench/README.md. */
export function markdownTable(rows: readonly Row[]): string {
  const escape = (cell: string) => cell.replace(/\|/g, '\\|');
  return [
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map(() => '---').join('|')}|`,
    ...allCells(rows).map((cells) => `| ${cells.map(escape).join(' | ')} |`),
  ].join('\n');
}
