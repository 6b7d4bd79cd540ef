import type { Logger } from '../domain/index.js';

/** Anything the lifecycle closes at shutdown. */
export interface Closeable {
  close(): Promise<void>;
}

/**
 * The one owner of what the composition root opened: resources are added as they start and
 * closed in reverse order, each awaited before the next, so a part closes only after the
 * parts that use it. A resource whose close fails is logged and the rest still close.
 */
export class Lifecycle {
  private readonly resources: Array<{ readonly name: string; readonly resource: Closeable }> = [];
  private closing: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  /** Registers a started resource; returns it. Adding after closeAll() is a bug. */
  add<T extends Closeable>(name: string, resource: T): T {
    if (this.closing !== undefined) throw new Error(`${name} was added after the lifecycle closed`);
    this.resources.push({ name, resource });
    return resource;
  }

  /** Closes everything added, last first. Idempotent: returns the same promise when called twice. */
  closeAll(): Promise<void> {
    this.closing ??= (async () => {
      for (const { name, resource } of this.resources.toReversed()) {
        try {
          await resource.close();
        } catch (error) {
          this.logger.error('closing failed; closing the rest', { resource: name, error });
        }
      }
    })();
    return this.closing;
  }
}
