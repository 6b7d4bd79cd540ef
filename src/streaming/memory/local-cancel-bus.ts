import type { CancelBus } from '../../domain/index.js';

/** Single instance: a request is handled at once, and no request can race a start. */
export class LocalCancelBus implements CancelBus {
  private handler: (runId: string) => void = () => undefined;

  async request(runId: string): Promise<void> {
    this.handler(runId);
  }

  onRequest(handler: (runId: string) => void): void {
    this.handler = handler;
  }

  heardBefore(): boolean {
    return false;
  }
}
