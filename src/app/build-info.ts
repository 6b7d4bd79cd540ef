import type { Logger } from '../domain/index.js';
import { packageVersion } from '../lib/embedded-assets.js';
import type { BuildInfo } from '../observability/metrics.js';

/** This build's version from package.json (embedded in the single executable), read once at start-up; `unknown` (logged) when it cannot be read. */
export function readBuildInfo(logger: Logger): Promise<BuildInfo> {
  const version = packageVersion(import.meta.url);
  if (version === 'unknown') logger.warn('could not read the version from package.json; agentd_build_info shows "unknown"');
  return Promise.resolve({ version });
}
