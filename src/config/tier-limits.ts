/** Concurrent queued+running runs allowed per account, by tier name. */
export type TierLimits = ReadonlyMap<string, number>;

const TIER_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** Parses `free:1,pro:5,enterprise:25`; throws Error with a human message on bad input. */
export function parseTierLimits(text: string): TierLimits {
  const limits = new Map<string, number>();
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const match = /^([^:]+):(\d+)$/.exec(part);
    const name = match?.[1]?.trim();
    if (match === null || name === undefined || !TIER_NAME.test(name)) {
      throw new Error(`must be a list like "free:1,pro:5" (lowercase tier names, whole-number limits); "${part}" is not`);
    }
    if (limits.has(name)) throw new Error(`names tier "${name}" twice`);
    limits.set(name, Number(match[2]));
  }
  if (limits.size === 0) throw new Error('must name at least one tier');
  return limits;
}
