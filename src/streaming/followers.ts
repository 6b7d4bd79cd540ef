/**
 * How many followers (SSE listeners) this instance serves now, for /metrics and the capacity
 * view. It lives with the streaming floor so that observability reads it without importing http.
 */
export class Followers {
  private openCount = 0;

  /** Followers open now. */
  get count(): number {
    return this.openCount;
  }

  /** Counts one follower until the returned function is called (idempotent). */
  open(): () => void {
    this.openCount += 1;
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.openCount -= 1;
    };
  }
}
