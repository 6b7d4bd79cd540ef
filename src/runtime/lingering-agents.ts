/**
 * Agents still running after their run ended: they ignored its AbortSignal (or are slow to
 * notice it). The run is over and its slot free, but the agent's task still holds its memory
 * and whatever it opened. A count that stays up points at an agent that never stops.
 */
export class LingeringAgents {
  private lingering = 0;

  get count(): number {
    return this.lingering;
  }

  /** Counts an agent whose run has ended until its task settles. */
  watch(task: Promise<unknown>): void {
    this.lingering += 1;
    const settled = () => {
      this.lingering -= 1;
    };
    task.then(settled, settled);
  }
}
