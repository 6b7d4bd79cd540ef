/** How one figure varied across repeated passes of the same step. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  /** (max − min) ÷ median, in per cent; 0 for a single pass. */
  readonly spreadPct: number;
  readonly values: readonly number[];
}

/** Median (the lower middle for an even count), range and spread of `values`; NaN values are left out. */
export function spreadOf(values: readonly number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v));
  const sorted = [...finite].sort((a, b) => a - b);
  if (sorted.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, spreadPct: Number.NaN, values };
  const median = sorted[Math.floor((sorted.length - 1) / 2)] as number;
  const min = sorted[0] as number;
  const max = sorted[sorted.length - 1] as number;
  const spreadPct = median === 0 ? 0 : Math.round(((max - min) / Math.abs(median)) * 1000) / 10;
  return { median, min, max, spreadPct, values };
}

/** The pass whose `key` is the median of all passes' (the lower middle for an even count). */
export function medianPass<T>(passes: readonly T[], key: (pass: T) => number): T {
  if (passes.length === 0) throw new Error('medianPass: no passes');
  const sorted = [...passes].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)] as T;
}

/**
 * A spread as the table shows it: `41 µs (39–44, spread 12 %)`; only the median with one pass.
 * `digits` is the rounding of the three numbers.
 */
export function formatSpread(spread: Spread, unit: string, digits = 0): string {
  const n = (v: number) => v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const head = `${n(spread.median)}${unit === '' ? '' : ` ${unit}`}`;
  if (spread.values.length < 2) return head;
  return `${head} (${n(spread.min)}–${n(spread.max)}, spread ${spread.spreadPct.toFixed(0)} %)`;
}

/** Runs `pass` `count` times, each after `hooks.before` (the pinning step), and returns every pass's result in order. */
export async function repeat<T>(
  count: number,
  pass: (index: number) => Promise<T>,
  hooks: { before?: (index: number) => Promise<void> } = {},
): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < count; i += 1) {
    await hooks.before?.(i);
    results.push(await pass(i));
  }
  return results;
}
