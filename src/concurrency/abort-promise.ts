/**
 * A promise that rejects with the signal's reason when it aborts (at once if it already
 * has), for racing work against a signal; `dispose()` removes its listener. It never causes
 * an unhandled rejection when it loses the race.
 */
export function abortPromise(signal: AbortSignal): { promise: Promise<never>; dispose: () => void } {
  let onAbort: () => void = () => undefined;
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => undefined); // observed through the race
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}
