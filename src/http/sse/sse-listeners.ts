/** How many SSE listeners this instance serves now (for /metrics and the capacity view). */
export class SseListeners {
  private open = 0;

  get count(): number {
    return this.open;
  }

  /** Counts a listener until the returned function is called (idempotent). */
  track(): () => void {
    this.open += 1;
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.open -= 1;
    };
  }
}
