// The WatchStream both backends hand out: the backend pushes events in, one consumer iterates them. A failure is
// delivered as exactly one ERROR event, after which the stream ends and the backend's resources are released.
import type { BrokerflowError } from '../errors';
import type { WatchEvent, WatchStream } from './types';

/** A push-fed {@link WatchStream}; `release` frees the backend's watch (called once, on failure or stop). */
export class PushWatchStream implements WatchStream {
  private queue: WatchEvent[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  private ended = false;
  private released = false;

  constructor(private readonly release: () => void) {}

  /** Whether the backend should still feed events (false once failed or stopped). */
  get open(): boolean {
    return !this.ended;
  }

  push(event: WatchEvent): void {
    if (this.ended) return;
    this.queue.push(event);
    this.notify();
  }

  /** Ends the stream with one ERROR event carrying `error`; later pushes and failures are ignored. */
  fail(error: BrokerflowError): void {
    if (this.ended) return;
    this.queue.push({ type: 'ERROR', error });
    this.ended = true;
    this.releaseOnce();
    this.notify();
  }

  hasTerminated(): boolean {
    return this.released;
  }

  /** Ends the stream without an ERROR; events not yet read are dropped. */
  stop(): void {
    if (!this.ended) {
      this.ended = true;
      this.queue = [];
      this.head = 0;
    }
    this.releaseOnce();
    this.notify();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    return {
      next: () => this.next(),
      return: () => {
        this.stop();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private async next(): Promise<IteratorResult<WatchEvent>> {
    for (;;) {
      if (this.head < this.queue.length) {
        const value = this.queue[this.head++]!;
        if (this.head === this.queue.length) {
          this.queue = [];
          this.head = 0;
        }
        return { done: false, value };
      }
      if (this.ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private releaseOnce(): void {
    if (this.released) return;
    this.released = true;
    this.release();
  }
}
