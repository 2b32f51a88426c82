import { huffmanDecode } from "./huffman.js";
import { STATIC_TABLE } from "./hpack-static-table.js";

/** A header block that can't be decoded: the connection's HPACK state is lost (COMPRESSION_ERROR). */
export class HpackError extends Error {
  override name = "HpackError";
}

/** Bytes an entry costs in the dynamic table besides its name and value (RFC 7541 § 4.1). */
export const ENTRY_OVERHEAD = 32;
/** The table size both sides start with (SETTINGS_HEADER_TABLE_SIZE's default). */
export const DEFAULT_TABLE_SIZE = 4096;
/** Integers past this are refused: nothing in a header block needs more, and it keeps the arithmetic exact. */
const MAX_INTEGER = 2 ** 31 - 1;

export type HeaderList = [name: string, value: string][];

/**
 * Decodes HPACK header blocks of one connection (RFC 7541): its dynamic table lives as long as
 * the connection. Names and values come back as latin1 strings (one char per octet). A block
 * whose fields add up past `maxHeaderListBytes` (name + value + 32 each, as
 * SETTINGS_MAX_HEADER_LIST_SIZE counts) throws, as does any malformed one.
 */
export class HpackDecoder {
  /** Newest first: index 62 is entries[0]. */
  private readonly entries: [string, string][] = [];
  private tableBytes = 0;
  private maxTableBytes: number;

  /**
   * @param tableLimit the SETTINGS_HEADER_TABLE_SIZE this side advertised: the most the peer's
   *   size updates may set.
   */
  constructor(
    private readonly tableLimit = DEFAULT_TABLE_SIZE,
    private readonly maxHeaderListBytes = 16 * 1024,
  ) {
    this.maxTableBytes = tableLimit;
  }

  decode(block: Uint8Array): HeaderList {
    const headers: HeaderList = [];
    let listBytes = 0;
    let pos = 0;
    let fieldsSeen = false;
    const int = (prefixBits: number): number => {
      if (pos >= block.length) throw new HpackError("header block ends inside an integer");
      const mask = (1 << prefixBits) - 1;
      let value = block[pos++]! & mask;
      if (value < mask) return value;
      let shift = 0;
      for (;;) {
        if (pos >= block.length) throw new HpackError("header block ends inside an integer");
        const byte = block[pos++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if (value > MAX_INTEGER) throw new HpackError("integer too large");
        if ((byte & 0x80) === 0) return value;
        shift += 7;
      }
    };
    const str = (): string => {
      if (pos >= block.length) throw new HpackError("header block ends before a string");
      const huffman = (block[pos]! & 0x80) !== 0;
      const length = int(7);
      if (pos + length > block.length) throw new HpackError("string runs past the header block");
      let text: string;
      try {
        text = huffman ? huffmanDecode(block, pos, length).toString("latin1") : Buffer.from(block.buffer, block.byteOffset + pos, length).toString("latin1");
      } catch (err) {
        throw new HpackError((err as Error).message);
      }
      pos += length;
      return text;
    };
    const add = (name: string, value: string): void => {
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if (listBytes > this.maxHeaderListBytes) throw new HpackError(`header list larger than ${this.maxHeaderListBytes} bytes`);
      headers.push([name, value]);
      fieldsSeen = true;
    };
    while (pos < block.length) {
      const first = block[pos]!;
      if (first & 0x80) {
        // Indexed field.
        const [name, value] = this.entry(int(7));
        add(name, value);
      } else if (first & 0x40) {
        // Literal with incremental indexing.
        const index = int(6);
        const name = index === 0 ? str() : this.entry(index)[0];
        const value = str();
        this.insert(name, value);
        add(name, value);
      } else if (first & 0x20) {
        // Dynamic table size update: only before the block's first field.
        if (fieldsSeen) throw new HpackError("table size update after a header field");
        const size = int(5);
        if (size > this.tableLimit) throw new HpackError(`table size update to ${size} past the limit ${this.tableLimit}`);
        this.maxTableBytes = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): the same to a decoder.
        const index = int(4);
        const name = index === 0 ? str() : this.entry(index)[0];
        add(name, str());
      }
    }
    return headers;
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (entry === undefined) throw new HpackError(`index ${index} past the tables`);
    return entry;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (RFC 7541 § 4.4).
    this.evict(size);
    if (size <= this.maxTableBytes) {
      this.entries.unshift([name, value]);
      this.tableBytes += size;
    }
  }

  /** Evicts oldest entries until `room` more bytes fit. */
  private evict(room: number): void {
    while (this.entries.length > 0 && this.tableBytes + room > this.maxTableBytes) {
      const [name, value] = this.entries.pop()!;
      this.tableBytes -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }

  /** Bytes the dynamic table holds (entries' sizes as RFC 7541 counts them). */
  get dynamicTableBytes(): number {
    return this.tableBytes;
  }
}
