/**
 * A coalescing "something changed" flag that one loop waits on: however many times it is
 * notified while the loop works, the loop wakes once, so what a notifier can pile up stays
 * bounded whatever the event rate.
 */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | undefined;

  notify(): void {
    this.pending = true;
    this.resolve?.();
  }

  /** Resolves at once if notified since the last wait, else at the next notify. */
  async wait(): Promise<void> {
    if (!this.pending) await new Promise<void>((r) => (this.resolve = r));
    this.clear();
  }

  /** Forgets notifications so far (a read that starts now covers them). */
  clear(): void {
    this.resolve = undefined;
    this.pending = false;
  }
}
