import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Logger } from '../domain/index.js';
import type { BuildInfo } from '../observability/metrics.js';

/** package.json, two floors up from this module in src/app/ and in dist/app/ alike. */
const PACKAGE_JSON = new URL('../../package.json', import.meta.url);

/** This build's version from package.json, read once at start-up; `unknown` (logged) when it cannot be read. */
export async function readBuildInfo(logger: Logger): Promise<BuildInfo> {
  try {
    const { version } = z.object({ version: z.string().min(1) }).parse(JSON.parse(await readFile(PACKAGE_JSON, 'utf8')));
    return { version };
  } catch (error) {
    logger.warn('could not read the version from package.json; agentd_build_info shows "unknown"', { error });
    return { version: 'unknown' };
  }
}
