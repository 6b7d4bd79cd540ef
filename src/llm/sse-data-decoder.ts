/**
 * Splits a Server-Sent Events byte stream into the `data` payloads of its events (several
 * `data:` lines of one event are joined with a newline). Comments and other fields are
 * skipped; CRLF and LF line ends are both accepted.
 */
export class SseDataDecoder {
  private readonly text = new TextDecoder();
  private buffer = '';
  private data: string[] = [];

  /** Feeds bytes; returns the payloads of the events they completed. */
  push(chunk: Uint8Array): string[] {
    const buffer = this.buffer + this.text.decode(chunk, { stream: true });
    const payloads: string[] = [];
    let start = 0;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n', start)) {
      const line = buffer.slice(start, nl).replace(/\r$/, '');
      start = nl + 1;
      if (line === '') {
        if (this.data.length > 0) payloads.push(this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        this.data.push(line.slice(5).replace(/^ /, ''));
      }
    }
    this.buffer = buffer.slice(start);
    return payloads;
  }
}
