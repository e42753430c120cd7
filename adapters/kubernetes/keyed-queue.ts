// A work queue with per-key coalescing, used by the service watcher so that a burst of events on one service
// becomes at most one call in flight and one waiting, while different services are delivered concurrently.

/**
 * Items with per-key coalescing: a key already waiting is not queued twice (the newest item replaces it), and a
 * key pushed while its call is in flight runs once more after it.
 */
export class KeyedQueue<T> {
  private readonly waiting = new Map<string, T>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Map<string, T>();
  /** Items delivered. */
  delivered = 0;

  constructor(
    private readonly concurrency: number,
    private readonly keyOf: (item: T) => string,
    private readonly deliver: (item: T) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Items waiting or in flight. */
  get size(): number {
    return this.waiting.size + this.running.size + this.again.size;
  }

  push(item: T): void {
    const id = this.keyOf(item);
    if (this.running.has(id)) this.again.set(id, item);
    else this.waiting.set(id, item);
    this.pump();
  }

  /** Drops what waits and resolves once every call in flight has ended. */
  async drainInFlight(): Promise<void> {
    this.waiting.clear();
    this.again.clear();
    await Promise.allSettled([...this.running.values()]);
  }

  private pump(): void {
    while (this.running.size < this.concurrency && this.waiting.size > 0) {
      const [id, item] = this.waiting.entries().next().value as [string, T];
      this.waiting.delete(id);
      const p = this.deliver(item).then(
        () => {
          this.delivered += 1;
          this.running.delete(id);
          const next = this.again.get(id);
          if (next) {
            this.again.delete(id);
            this.waiting.set(id, next);
          }
          this.pump();
        },
        (err: unknown) => {
          this.running.delete(id);
          this.onError(err);
        },
      );
      this.running.set(id, p);
    }
  }
}
