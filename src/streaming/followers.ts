import { ListenerLimitError } from '../domain/index.js';

/** A refused listener may try again after this long, in seconds. */
const RETRY_AFTER_S = 1;

/**
 * How many followers (SSE listeners) this instance serves now, in all and per account, and
 * what they were sent, for /metrics and the capacity view; an account holds at most
 * `maxPerAccount` of them (SSE_MAX_LISTENERS_PER_ACCOUNT). It lives with the streaming floor
 * so that observability reads it without importing http.
 */
export class Followers {
  private openCount = 0;
  private readonly byAccount = new Map<string, number>();
  private eventsSent = 0;
  private bytesSent = 0;

  constructor(private readonly maxPerAccount: number = Number.POSITIVE_INFINITY) {}

  /** Followers open now. */
  get count(): number {
    return this.openCount;
  }

  /** Events and bytes written to followers since start-up. */
  get sent(): { readonly events: number; readonly bytes: number } {
    return { events: this.eventsSent, bytes: this.bytesSent };
  }

  /** Counts one write to a follower: `events` events (0 for a heartbeat) in `bytes` bytes. Called per write, not per event. */
  wrote(events: number, bytes: number): void {
    this.eventsSent += events;
    this.bytesSent += bytes;
  }

  /** Accounts with a follower open now. */
  get accounts(): number {
    return this.byAccount.size;
  }

  /** The account's followers open now. */
  countOf(accountId: string): number {
    return this.byAccount.get(accountId) ?? 0;
  }

  /**
   * Counts one follower of the account until the returned function is called (idempotent);
   * throws ListenerLimitError when the account already has `maxPerAccount` open.
   */
  open(accountId: string): () => void {
    const held = this.countOf(accountId);
    if (held >= this.maxPerAccount) throw new ListenerLimitError(this.maxPerAccount, RETRY_AFTER_S);
    this.byAccount.set(accountId, held + 1);
    this.openCount += 1;
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.openCount -= 1;
      const left = this.countOf(accountId) - 1;
      if (left > 0) this.byAccount.set(accountId, left);
      else this.byAccount.delete(accountId);
    };
  }
}
