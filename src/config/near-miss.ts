/** A variable set in the environment that agentd does not read, and the one it likely meant. */
export interface NearMiss {
  readonly name: string;
  readonly intended: string;
}

/** A prefix people add by habit (`AGENTD_PORT`); agentd's own variables have none. */
const HABITUAL_PREFIX = 'AGENTD_';

/** Levenshtein distance between two strings (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * Edits a name may be away from one of agentd's to count as a slip: 2 for names of 8
 * characters or more, 1 from 5, none below (`HOME` is 2 from `HOST`, and is not a slip).
 */
function allowedEdits(known: string): number {
  if (known.length >= 8) return 2;
  return known.length >= 5 ? 1 : 0;
}

/**
 * The variables of `env` that agentd does not read but that look like one it does: in another
 * case, with an `AGENTD_` prefix, or a few edits away (`RUN_QUEU_MAX`, `DATABSE_URL`). Each
 * with the closest known name. Only names are looked at, never values.
 */
export function nearMisses(env: NodeJS.ProcessEnv, known: readonly string[], alsoRead: ReadonlySet<string>): NearMiss[] {
  const exact = new Set(known);
  const misses: NearMiss[] = [];
  for (const name of Object.keys(env)) {
    if (exact.has(name) || alsoRead.has(name) || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) continue;
    const upper = name.toUpperCase();
    const bare = upper.startsWith(HABITUAL_PREFIX) ? upper.slice(HABITUAL_PREFIX.length) : upper;
    let best: { intended: string; distance: number } | undefined;
    for (const candidate of known) {
      if (Math.min(Math.abs(upper.length - candidate.length), Math.abs(bare.length - candidate.length)) > 2) continue;
      const distance = Math.min(editDistance(upper, candidate), editDistance(bare, candidate));
      if (distance <= allowedEdits(candidate) && (best === undefined || distance < best.distance)) best = { intended: candidate, distance };
    }
    if (best !== undefined) misses.push({ name, intended: best.intended });
  }
  return misses;
}
