/**
 * The origins whose pages may call the API from a browser (CORS_ORIGINS): `*` for any, or a
 * list of exact origins. Empty: none, and the API sends no CORS headers at all.
 */
export type CorsOrigins = '*' | readonly string[];

/**
 * Parses `https://app.example.com,http://localhost:5173` or `*`; throws Error with a human
 * message on bad input. Each origin is kept as a browser sends it in `Origin` (lowercase
 * scheme and host, no default port, no path), so a request's origin is compared exactly.
 */
export function parseCorsOrigins(text: string): CorsOrigins {
  const entries = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.includes('*')) {
    if (entries.length > 1) throw new Error('must be * alone or a list of origins, not both');
    return '*';
  }
  return [...new Set(entries.map(originOf))];
}

function originOf(entry: string): string {
  const problem = `must be a comma list of origins like https://app.example.com (scheme, host and port only) or *; "${entry}" is not`;
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw new Error(problem);
  }
  const bare = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === '';
  if (!['http:', 'https:'].includes(url.protocol) || !bare || !/^[a-z]+:\/\/[^/]+\/?$/i.test(entry)) throw new Error(problem);
  return url.origin;
}
