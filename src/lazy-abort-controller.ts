/**
 * An abort flag that builds its AbortController only when someone asks for the signal.
 *
 * Most RPCs finish without any code looking at their signal, and an AbortController plus the
 * DOMException a reason-less abort() creates cost a measurable share of a small RPC. Callers
 * abort with a preallocated reason, so aborting allocates nothing either.
 */
export class LazyAbortController {
  private controller: AbortController | undefined;
  private abortReason: unknown;
  private isAborted = false;

  /** True once abort() was called. */
  get aborted(): boolean {
    return this.isAborted;
  }

  /** The reason given to abort(); undefined before. */
  get reason(): unknown {
    return this.abortReason;
  }

  /** The signal; created on first read, already aborted if abort() came first. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.isAborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** Aborts once; later calls are ignored. */
  abort(reason: unknown): void {
    if (this.isAborted) return;
    this.isAborted = true;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}
