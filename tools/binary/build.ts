/**
 * `npm run build:binary`: agentd as one executable file (Node's single executable applications).
 * The CLI (whose `serve` is the server) is bundled into one CommonJS file with esbuild; PGlite's
 * WebAssembly and data and package.json go in as assets; the blob is injected into a copy of
 * this Node binary with postject. Output: build/binary/agentd (and its size on stdout).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT = join(ROOT, 'build/binary');
const PGLITE = join(ROOT, 'node_modules/@electric-sql/pglite/dist');
/** The fuse Node's single executable applications look for (Node's documentation gives it). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export async function buildBinary(outDir = OUT): Promise<string> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const bundle = join(outDir, 'agentd.cjs');
  await build({
    entryPoints: [join(ROOT, 'src/cli/main.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: bundle,
    // ES modules' import.meta.url has no CommonJS equivalent: the executable's own path stands
    // in (what reads beside it takes the embedded copy first, see lib/embedded-assets.ts).
    define: { 'import.meta.url': '__agentd_module_url' },
    banner: { js: "const __agentd_module_url = require('node:url').pathToFileURL(process.execPath).href;" },
    logLevel: 'error',
  });
  const blob = join(outDir, 'agentd.blob');
  const config = {
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    assets: {
      'package.json': join(ROOT, 'package.json'),
      'pglite.wasm': join(PGLITE, 'pglite.wasm'),
      'initdb.wasm': join(PGLITE, 'initdb.wasm'),
      'pglite.data': join(PGLITE, 'pglite.data'),
    },
  };
  const configPath = join(outDir, 'sea-config.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  execFileSync(process.execPath, ['--experimental-sea-config', configPath], { stdio: 'inherit' });
  const executable = join(outDir, 'agentd');
  copyFileSync(process.execPath, executable);
  chmodSync(executable, 0o755);
  await inject(executable, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
  rmSync(blob);
  return executable;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const executable = await buildBinary();
  const mb = statSync(executable).size / 1024 / 1024;
  process.stdout.write(`${executable}: ${mb.toFixed(1)} MB\n`);
}
