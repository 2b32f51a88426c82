import { LazyAbortController } from "../lazy-abort-controller.js";
import {
  BOTH_CLOSED,
  CANCELED_BY_PEER,
  CLOSED_BY_PEER,
  CLOSED_LOCALLY,
  DrpcError,
  DrpcErrorCode,
  ERRORED_LOCALLY,
  SEND_CLOSED,
} from "./errors.js";
import type { Packet } from "./packet-reader.js";
import type { PacketWriter } from "./packet-writer.js";
import { decodeErrorBody, encodeErrorBody, kindName, MAX_PACKET_BYTES, PacketKind } from "./wire.js";

/** One RPC as either side sees it: what a server handler is given, and what a client opens. */
export interface DrpcCall {
  /** The DRPC stream id (1 for the first RPC on a transport). */
  readonly id: number;
  /** The method string of the Invoke, e.g. `/coder.agent.v2.Agent/GetManifest`. */
  readonly method: string;
  /** The InvokeMetadata sent for this stream id just before its Invoke, if any. */
  readonly metadata: ReadonlyMap<string, string> | undefined;
  /** Aborted (with a `DrpcError`) when the RPC is over for any reason; created when first read. */
  readonly signal: AbortSignal;
  /** True once the RPC is over on this side: no more sends, no more messages. */
  readonly terminated: boolean;
  /**
   * The next message from the peer; undefined once it sent CloseSend or Close and the queue is
   * empty. Rejects with a `DrpcError` when the RPC was canceled, failed or the transport went.
   */
  receive(): Promise<Uint8Array | undefined>;
  /** The peer's messages as an async iterable (see `receive`). */
  messages(): AsyncIterable<Uint8Array>;
  /**
   * Sends one message (split into 64 KiB frames). Throws a `DrpcError` once sending is over or
   * for a message larger than a packet may be. The promise, when there is one, resolves when
   * the transport takes writes again: await it before sending more.
   */
  send(message: Uint8Array): Promise<void> | undefined;
  /** Sends CloseSend: no more messages from this side; the RPC is over once the peer's arrives too. */
  closeSend(): void;
  /** Sends Close: the RPC is over, both ways. A no-op once it is over. */
  close(): void;
  /** Sends Error with a numeric code (Coder's are gRPC's) and message; the RPC is over. */
  error(code: number, message: string): void;
}

/** @internal What a stream needs from its connection. */
export interface StreamHost {
  readonly writer: PacketWriter;
  /** Receive queue bounds: past either, the connection stops reading the transport. */
  readonly maxQueuedMessages: number;
  readonly maxQueuedBytes: number;
  /** Undefined when the transport takes writes, else a promise for when it does again. */
  writable(): Promise<void> | undefined;
  /** The stream's receive queue went below its bounds. */
  inputDrained(): void;
  /** The stream's RPC is over. */
  streamTerminated(stream: DrpcStream): void;
}

const EMPTY = new Uint8Array(0);

/** Throws `ERR_DRPC_MESSAGE_TOO_LARGE` for a message no peer would accept (over 4 MiB). */
export function checkMessageSize(message: Uint8Array): void {
  if (message.length > MAX_PACKET_BYTES) {
    throw new DrpcError(DrpcErrorCode.MessageTooLarge, `message of ${message.length} bytes exceeds the ${MAX_PACKET_BYTES}-byte packet limit`);
  }
}

interface Waiter {
  resolve(message: Uint8Array | undefined): void;
  reject(error: DrpcError): void;
}

/**
 * The state of one RPC on a transport, for the server and the client alike (drpc's stream
 * state machine): the peer's messages in a bounded queue, this side's sends numbered from its
 * first message id, and termination by Close, Error, Cancel, both CloseSends, or the connection.
 * @internal Created by the connections; users see it as a `DrpcCall`.
 */
export class DrpcStream implements DrpcCall {
  readonly id: number;
  readonly method: string;
  readonly metadata: ReadonlyMap<string, string> | undefined;
  private readonly host: StreamHost;
  private nextMessageId: number;
  private queue: Uint8Array[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private waiter: Waiter | undefined;
  /** No more messages will be queued (the peer ended its side, or the RPC is over). */
  private receiveEnded = false;
  /** Set when receiving ends in failure rather than at the peer's CloseSend/Close. */
  private receiveError: DrpcError | undefined;
  /** No one reads any more: messages are dropped as they come. */
  private discarding = false;
  private sendEnded = false;
  private termination: DrpcError | undefined;
  private readonly abort = new LazyAbortController();

  constructor(host: StreamHost, id: number, method: string, metadata: ReadonlyMap<string, string> | undefined, firstMessageId: number) {
    this.host = host;
    this.id = id;
    this.method = method;
    this.metadata = metadata;
    this.nextMessageId = firstMessageId;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get terminated(): boolean {
    return this.termination !== undefined;
  }

  /** @internal True while the queue is at a bound (the connection pauses the transport). */
  get queueFull(): boolean {
    return this.queue.length - this.queueHead >= this.host.maxQueuedMessages || this.queuedBytes >= this.host.maxQueuedBytes;
  }

  receive(): Promise<Uint8Array | undefined> {
    // A client's Invoke waits in the writer until the first send or receive.
    this.host.writer.scheduleFlush();
    if (this.receiveError !== undefined) return Promise.reject(this.receiveError);
    if (this.queueHead < this.queue.length) return Promise.resolve(this.dequeue());
    if (this.receiveEnded) return Promise.resolve(undefined);
    if (this.waiter !== undefined) return Promise.reject(new Error("receive() called while another receive() is pending"));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async *messages(): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      const message = await this.receive();
      if (message === undefined) return;
      yield message;
    }
  }

  send(message: Uint8Array): Promise<void> | undefined {
    if (this.sendEnded) throw this.termination ?? SEND_CLOSED;
    checkMessageSize(message);
    this.write(PacketKind.Message, message);
    return this.host.writable();
  }

  closeSend(): void {
    if (this.sendEnded) return;
    this.write(PacketKind.CloseSend, EMPTY);
    this.sendEnded = true;
    if (this.receiveEnded) this.terminate(BOTH_CLOSED);
  }

  close(): void {
    if (this.termination !== undefined) return;
    this.write(PacketKind.Close, EMPTY);
    this.terminate(CLOSED_LOCALLY);
  }

  error(code: number, message: string): void {
    if (this.termination !== undefined) return;
    this.write(PacketKind.Error, encodeErrorBody(code, message));
    this.terminate(ERRORED_LOCALLY);
  }

  /** @internal Ends the RPC here without telling the peer (transport gone, newer RPC, caller's abort). */
  cancel(reason: DrpcError): void {
    this.terminate(reason);
  }

  /** @internal The server's handler returned: nobody reads the queue any more. */
  stopReceiving(): void {
    this.discarding = true;
    this.dropQueue();
  }

  /** @internal A packet for this stream id; throws a protocol `DrpcError` for one that can't be. */
  handlePacket(packet: Packet): void {
    if (this.termination !== undefined) return; // late packets (a racy Close) are ignored, as drpc does
    switch (packet.kind) {
      case PacketKind.Message:
        if (!this.receiveEnded && !this.discarding) this.enqueue(packet.data);
        return;
      case PacketKind.CloseSend:
        this.endReceive();
        if (this.sendEnded) this.terminate(BOTH_CLOSED);
        return;
      case PacketKind.Close:
        this.endReceive();
        this.terminate(CLOSED_BY_PEER);
        return;
      case PacketKind.Cancel:
        this.terminate(CANCELED_BY_PEER);
        return;
      case PacketKind.Error: {
        const { code, message } = decodeErrorBody(packet.data);
        this.terminate(new DrpcError(DrpcErrorCode.Remote, message, code));
        return;
      }
      default:
        throw new DrpcError(DrpcErrorCode.Protocol, `${kindName(packet.kind)} on existing stream ${this.id}`);
    }
  }

  private write(kind: PacketKind, data: Uint8Array): void {
    const writer = this.host.writer;
    writer.append(kind, this.id, this.nextMessageId++, data);
    writer.scheduleFlush();
  }

  private enqueue(message: Uint8Array): void {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter.resolve(message);
      return;
    }
    this.queue.push(message);
    this.queuedBytes += message.length;
  }

  private dequeue(): Uint8Array {
    const wasFull = this.queueFull;
    const message = this.queue[this.queueHead]!;
    this.queue[this.queueHead++] = EMPTY;
    this.queuedBytes -= message.length;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    if (wasFull && !this.queueFull) this.host.inputDrained();
    return message;
  }

  private dropQueue(): void {
    const wasFull = this.queueFull;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    if (wasFull) this.host.inputDrained();
  }

  /** The peer will send no more messages: a pending receive gets the end. */
  private endReceive(): void {
    this.receiveEnded = true;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve(undefined);
  }

  private terminate(reason: DrpcError): void {
    if (this.termination !== undefined) return;
    this.termination = reason;
    this.sendEnded = true;
    if (!this.receiveEnded) {
      this.receiveEnded = true;
      this.receiveError = reason;
      this.dropQueue();
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.reject(reason);
    }
    this.abort.abort(reason);
    this.host.streamTerminated(this);
  }
}
