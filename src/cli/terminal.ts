/** Where a command writes, and how: a live terminal gets colours and a status line, anything else plain text. */
export interface Terminal {
  readonly stdout: Output;
  readonly stderr: Output;
  /** stdout is a terminal: live status line, colours (unless NO_COLOR). */
  readonly live: boolean;
  readonly style: Style;
}

export interface Output {
  write(text: string): unknown;
  readonly columns?: number;
}

export interface Style {
  bold(text: string): string;
  dim(text: string): string;
  green(text: string): string;
  red(text: string): string;
  yellow(text: string): string;
}

const ansi = (open: number, close: number) => (text: string) => `\x1b[${open}m${text}\x1b[${close}m`;
const plain = (text: string) => text;

/** ANSI colours, or none. */
export function style(colors: boolean): Style {
  if (!colors) return { bold: plain, dim: plain, green: plain, red: plain, yellow: plain };
  return { bold: ansi(1, 22), dim: ansi(2, 22), green: ansi(32, 39), red: ansi(31, 39), yellow: ansi(33, 39) };
}

/** The process's terminal: live when stdout is a TTY; coloured then too, unless NO_COLOR is set. */
export function processTerminal(noColor: boolean): Terminal {
  const live = process.stdout.isTTY === true;
  return { stdout: process.stdout, stderr: process.stderr, live, style: style(live && !noColor) };
}

/** Rows as aligned columns, the first row the header; the last column is not padded. */
export function table(rows: ReadonlyArray<readonly string[]>, header: (text: string) => string = plain): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows
    .map((row, r) => {
      const line = row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ');
      return `${r === 0 ? header(line) : line}\n`;
    })
    .join('');
}

/** A value for a line of text: strings as they are, anything else as JSON. */
export function shown(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? 'null');
}
