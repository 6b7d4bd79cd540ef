/**
 * Files carried inside agentd's single executable (Node's single executable applications): the
 * embedded database's WebAssembly and data, and package.json. Outside the executable there are
 * none, and callers read the files from the package as usual.
 */
import { readFileSync } from 'node:fs';
import sea from 'node:sea';

/** Asset names, as `npm run build:binary` embeds them. */
export const EMBEDDED = {
  packageJson: 'package.json',
  pgliteWasm: 'pglite.wasm',
  initdbWasm: 'initdb.wasm',
  pgliteData: 'pglite.data',
} as const;

/** Whether this process is the single executable. */
export function inSingleExecutable(): boolean {
  return sea.isSea();
}

/** An embedded file's bytes, or undefined outside the single executable. */
export function embeddedAsset(name: (typeof EMBEDDED)[keyof typeof EMBEDDED]): ArrayBuffer | undefined {
  return sea.isSea() ? sea.getAsset(name) : undefined;
}

/** package.json's `version`: embedded in the executable, else read two folders up from src/<floor>/ or dist/<floor>/; `unknown` when neither is there. */
export function packageVersion(moduleUrl: string): string {
  try {
    const embedded = embeddedAsset(EMBEDDED.packageJson);
    const text =
      embedded === undefined ? readFileSync(new URL('../../package.json', moduleUrl), 'utf8') : new TextDecoder().decode(embedded);
    const { version } = JSON.parse(text) as { version?: unknown };
    return typeof version === 'string' && version.length > 0 ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}
