import { constants, setPriority } from 'node:os';

/**
 * Offload threads run at the lowest CPU priority (on Linux, where a thread's nice value is its
 * own; `0` is this thread), so when cores are short the event loops serving every run's events
 * win them: offloaded work waits a little, streams do not. Elsewhere this may apply to the whole
 * process, so it is Linux only. Best effort: a system that refuses it runs the thread as it is.
 */
function lowerThreadPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(0, constants.priority.PRIORITY_LOW);
  } catch {
    // Refused (a sandbox without setpriority): the thread keeps its priority; nothing else depends on it.
  }
}

lowerThreadPriority();

/**
 * The module every offload thread loads (piscina calls its default export once per task):
 * imports the task's module (Node caches it per thread) and calls the named export with the
 * task's arguments. What it returns, or throws, goes back to the run.
 */
export default async function runOffloadTask(task: { readonly url: string; readonly exportName: string; readonly args: unknown }) {
  const loaded = (await import(task.url)) as Record<string, unknown>;
  const fn = loaded[task.exportName];
  if (typeof fn !== 'function') {
    throw new TypeError(`ctx.offload: ${task.url} has no exported function "${task.exportName}"`);
  }
  return (await (fn as (args: unknown) => unknown)(task.args)) as unknown;
}
