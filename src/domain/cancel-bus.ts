/**
 * Carries cancel requests to whichever instance runs a run. In-process for a single
 * instance; Redis pub/sub plus a key for several.
 */
export interface CancelBus {
  /** Asks the instance running `runId` to cancel it. */
  request(runId: string): Promise<void>;
  /**
   * Sets the one handler for requests reaching this instance. `localRuns` lists the runs
   * this instance holds, so requests that may have been missed (a reconnect) are checked.
   */
  onRequest(handler: (runId: string) => void, localRuns: () => Iterable<string>): void;
  /**
   * True if a cancel for the run reached this instance before the run was registered here
   * (checked when a run starts, for a cancel that raced its admission).
   */
  heardBefore(runId: string): boolean;
}
