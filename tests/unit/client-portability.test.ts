import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLIENT = join(ROOT, 'src/client');

describe('agentd/client runs in browsers as it is', () => {
  it('type-checks with the browser globals (DOM) and without Node’s', () => {
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.client.json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });

  it('loads nothing at run time from outside src/client: other imports are `import type`', () => {
    const offenders: string[] = [];
    for (const file of readdirSync(CLIENT).filter((name) => name.endsWith('.ts'))) {
      const source = readFileSync(join(CLIENT, file), 'utf8');
      for (const match of source.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)';/gms)) {
        const [, , typeOnly, specifier] = match;
        if (typeOnly === undefined && !(specifier ?? '').startsWith('./')) offenders.push(`${file}: ${specifier}`);
      }
    }
    assert.deepEqual(offenders, []);
  });
});
