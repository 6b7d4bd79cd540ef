import { type FinalStatus, isBuiltInEvent, type RunEvent } from '../client/index.js';
import { StatusLine } from './status-line.js';
import { shown, type Terminal } from './terminal.js';

/** Shows a run's events as they come, and how it ended. */
export interface EventPrinter {
  event(event: RunEvent): void;
  /** A remark for the person at the terminal (stderr), e.g. "cancelling". */
  note(text: string): void;
  /** The run ended with `status` (null: the stream ended without an `end` seen here). */
  finish(status: FinalStatus | null): void;
  /** Following stopped before the end (Ctrl-C, an error): the status line goes, nothing is summed up. */
  stop(): void;
}

/** `--json`: one JSON object per event on stdout (`{"id","type","data"}`), nothing else. */
export function jsonPrinter(terminal: Terminal): EventPrinter {
  return {
    event: (event) => terminal.stdout.write(`${JSON.stringify(event)}\n`),
    note: (text) => terminal.stderr.write(`${text}\n`),
    finish: () => undefined,
    stop: () => undefined,
  };
}

/**
 * For people: the run's output on stdout (token text as it streams, each message's content,
 * one line per tool call), its status changes, errors and ending on stderr. On a live terminal
 * a status line at the bottom shows the run's status, events and time so far.
 */
export class TextPrinter implements EventPrinter {
  private status = 'connecting';
  private events = 0;
  private readonly startedMs = Date.now();
  /** Token text went out since the last message: a message that follows repeats it (the whole reply). */
  private streamed = false;
  private atLineStart = true;
  private readonly line: StatusLine | undefined;

  constructor(
    private readonly terminal: Terminal,
    private readonly runId: string,
    private readonly hint = '',
  ) {
    if (terminal.live) {
      this.line = new StatusLine(terminal.stdout, () => this.statusText());
      this.line.start();
    }
  }

  event(event: RunEvent): void {
    this.events += 1;
    const { style } = this.terminal;
    // An agent's own type: a line on stderr, so stdout stays the agent's text unbroken (on a
    // terminal the status line counts it; `--json` shows it whole).
    if (!isBuiltInEvent(event)) {
      if (this.line === undefined) this.terminal.stderr.write(`${style.dim(`[${event.type}] ${shown(event.data)}`)}\n`);
      return;
    }
    switch (event.type) {
      case 'status':
        this.status = event.data.status;
        if (this.line === undefined) this.err(`run ${this.runId} ${event.data.status}`);
        break;
      case 'token':
        this.out(event.data.text);
        this.streamed = true;
        break;
      case 'message':
        if (!this.streamed) this.outLine(shown(event.data.content));
        else this.endLine();
        this.streamed = false;
        break;
      case 'tool':
        this.outLine(style.dim(`[tool] ${event.data.name} ${shown(event.data.input)} → ${shown(event.data.output)}`));
        break;
      case 'error':
        this.err(style.red(`error: ${event.data.code}: ${event.data.message}`));
        break;
      case 'end':
        this.status = event.data.status;
        break;
      default: {
        const unknown: never = event;
        throw new Error(`unknown event ${JSON.stringify(unknown)}`);
      }
    }
  }

  note(text: string): void {
    this.err(this.terminal.style.yellow(text));
  }

  finish(status: FinalStatus | null): void {
    this.line?.stop();
    this.endLine();
    const { style } = this.terminal;
    const seconds = ((Date.now() - this.startedMs) / 1000).toFixed(1);
    const summary = `run ${this.runId} ${status ?? 'ended'} · ${this.events} events · ${seconds}s`;
    this.terminal.stderr.write(`${status === 'completed' ? style.green(`✓ ${summary}`) : style.red(`✗ ${summary}`)}\n`);
  }

  stop(): void {
    this.line?.stop();
    this.endLine();
  }

  private statusText(): string {
    const seconds = ((Date.now() - this.startedMs) / 1000).toFixed(1);
    return `${this.status} · run ${this.runId} · ${this.events} events · ${seconds}s${this.hint}`;
  }

  private out(text: string): void {
    if (this.line !== undefined) this.line.write(text);
    else this.terminal.stdout.write(text);
    if (text !== '') this.atLineStart = text.endsWith('\n');
  }

  private outLine(text: string): void {
    this.endLine();
    this.out(`${text}\n`);
  }

  private endLine(): void {
    if (!this.atLineStart) this.out('\n');
  }

  private err(text: string): void {
    this.endLine();
    if (this.line !== undefined) this.line.write(`${text}\n`, this.terminal.stderr);
    else this.terminal.stderr.write(`${text}\n`);
  }
}
