import type { Output } from './terminal.js';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const REDRAW_MS = 100;

/**
 * One line at the bottom of a live terminal, redrawn in place (`\r`, erase line) while a run
 * goes: anything else written goes through `write`, which takes the line away first and puts
 * it back after, when the cursor is at the start of a line (text that streams in mid-line,
 * such as tokens, hides it until its line ends).
 */
export class StatusLine {
  private shown = false;
  private atLineStart = true;
  private frame = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly out: Output,
    private readonly text: () => string,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.draw(), REDRAW_MS);
    this.timer.unref?.();
    this.draw();
  }

  /** Writes text above the line (to `to`, which may be stderr on the same terminal). */
  write(text: string, to: Output = this.out): void {
    if (text === '') return;
    this.clear();
    to.write(text);
    this.atLineStart = text.endsWith('\n');
    this.draw();
  }

  /** Takes the line away for good. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private draw(): void {
    if (this.timer === undefined || !this.atLineStart) return;
    this.frame = (this.frame + 1) % SPINNER.length;
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const line = `${SPINNER[this.frame] ?? ''} ${this.text()}`;
    this.out.write(`\r\x1b[2K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
    this.shown = true;
  }

  private clear(): void {
    if (!this.shown) return;
    this.out.write('\r\x1b[2K');
    this.shown = false;
  }
}
