// `npm start`'s pre-step: builds dist/ only when it is missing or older than a file under src/
// (or a tsconfig), so a start after a build takes no compiler, and a production install
// (`npm ci --omit=dev` after `npm run build`) starts without TypeScript. Plain JavaScript on
// purpose: it runs where only the runtime dependencies are installed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'dist', 'main.js');
const sources = [join(root, 'src'), join(root, 'tsconfig.json'), join(root, 'tsconfig.build.json')];

/** The newest modification time (ms) under `path`, or 0 when it does not exist. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((latest, name) => Math.max(latest, newest(join(path, name))), stat.mtimeMs);
}

/** Whether the TypeScript compiler is installed (it is a development dependency). */
function hasCompiler() {
  try {
    createRequire(join(root, 'package.json')).resolve('typescript');
    return true;
  } catch {
    return false;
  }
}

const missing = !existsSync(built);
const stale = !missing && Math.max(...sources.map(newest)) > statSync(built).mtimeMs;
if (missing || stale) {
  if (!hasCompiler()) {
    if (missing) {
      process.stderr.write('agentd: dist/ is not built and TypeScript is not installed: run `npm ci` and `npm run build` first.\n');
      process.exit(1);
    }
    process.stderr.write('agentd: src/ is newer than dist/, but TypeScript is not installed: starting the existing build.\n');
  } else {
    process.stderr.write(`agentd: ${missing ? 'building' : 'src/ changed: rebuilding'} dist/ (npm run build)\n`);
    const build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
    if (build.status !== 0) process.exit(build.status ?? 1);
  }
}
