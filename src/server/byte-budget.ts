/**
 * A count of bytes held against a limit, nested: a connection's budget draws on its agent's, the
 * agent's on the process's. A charge succeeds only if every level has room, so no level is ever
 * past its limit; a failed charge changes nothing.
 */
export class ByteBudget<Label extends string = string> {
  private used = 0;

  constructor(
    readonly limit: number,
    /** Names the level in refusals. */
    readonly label: Label,
    private readonly parent?: ByteBudget<Label>,
  ) {}

  /** Bytes held right now. */
  get inUse(): number {
    return this.used;
  }

  /** Takes `bytes` at this level and every level above; false (and nothing taken) when one has no room. */
  tryCharge(bytes: number): boolean {
    for (let b: ByteBudget<Label> | undefined = this; b !== undefined; b = b.parent) {
      if (b.used + bytes > b.limit) return false;
    }
    for (let b: ByteBudget<Label> | undefined = this; b !== undefined; b = b.parent) b.used += bytes;
    return true;
  }

  /** The label of the first level, from this one up, without room for `bytes`; undefined when all have it. */
  refusingLevel(bytes: number): Label | undefined {
    for (let b: ByteBudget<Label> | undefined = this; b !== undefined; b = b.parent) {
      if (b.used + bytes > b.limit) return b.label;
    }
    return undefined;
  }

  /** Gives back bytes a charge took. */
  release(bytes: number): void {
    for (let b: ByteBudget<Label> | undefined = this; b !== undefined; b = b.parent) b.used -= bytes;
  }
}
