/**
 * A number of bytes several holders share: each takes what it keeps and gives it back when it
 * lets go. Taking past the limit is refused (the holder does without), never queued.
 */
export class ByteBudget {
  private usedBytes = 0;

  /** `limitBytes`: what all holders may keep at once, 0 or more. */
  constructor(readonly limitBytes: number) {
    if (!(limitBytes >= 0)) throw new RangeError(`limitBytes must be 0 or more, got ${limitBytes}`);
  }

  /** Bytes held now. */
  get used(): number {
    return this.usedBytes;
  }

  /** Takes `bytes` if they fit under the limit; false (and nothing taken) if not. */
  take(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) return false;
    this.usedBytes += bytes;
    return true;
  }

  /** Gives back `bytes` taken earlier. */
  give(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
  }
}
