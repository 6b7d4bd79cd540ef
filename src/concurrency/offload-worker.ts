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
