/**
 * A peer of a real coordinator for tests, modelled on Coder's tailnettest peers: it sends
 * requests on its own Coordinate stream and keeps what it was told about every other peer, so a
 * test awaits a state ("has DERP 10 for the agent", "sees the client LOST") instead of sleeping.
 * Every wait is bounded.
 *
 *   const agent = TestPeer.agent(coordinator);
 *   const client = TestPeer.client(coordinator, agent.id);
 *   client.addTunnel(agent.id); agent.updateDERP(1);
 *   await client.waitForDERP(agent.id, 1);
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  CoordinateRequestSchema,
  CoordinateResponse_PeerUpdate_Kind as Kind,
  NodeSchema,
  type CoordinateRequest,
  type CoordinateResponse,
  type CoordinateResponse_PeerUpdate,
  type Node,
} from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes, uuidToBytes } from "../../src/agentapi/uuid-bytes.js";
import type { Coordinator } from "../../src/tailnet/coordinator.js";
import { agentAddresses } from "../../src/tailnet/agent-addresses.js";
import { agentCoordinateeAuth, clientCoordinateeAuth } from "../../src/tailnet/coordinatee-auth.js";
import type { PeerIdentity } from "../../src/tailnet/peer-identity.js";

const WAIT_MS = 10_000;

/** The node fields tests set. */
type NodeInit = { preferredDerp?: number; addresses?: string[]; endpoints?: string[] };

/** What a peer last heard about another. */
export interface Heard {
  kind: Kind;
  node?: Node;
  reason: string;
}

/** An async iterable of requests that a test pushes into: a Coordinate stream's request side. */
export class RequestQueue implements AsyncIterable<CoordinateRequest> {
  private items: CoordinateRequest[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(init: Parameters<typeof create<typeof CoordinateRequestSchema>>[1]): void {
    this.items.push(create(CoordinateRequestSchema, init));
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<CoordinateRequest> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

/** Opens a Coordinate stream elsewhere (an RPC client): the requests go out, the responses come back. */
export type OpenCoordinate = (requests: AsyncIterable<CoordinateRequest>, signal: AbortSignal) => AsyncIterable<CoordinateResponse>;

export class TestPeer {
  /** What this peer was told about each other peer, latest first-hand. */
  readonly heard = new Map<string, Heard>();
  /** Every update in order. */
  readonly updates: CoordinateResponse_PeerUpdate[] = [];
  readonly errors: string[] = [];
  /** Resolves when the response stream ends: with the error it failed with, if any. */
  readonly closed: Promise<Error | undefined>;
  private readonly requests = new RequestQueue();
  private readonly abort = new AbortController();
  private listeners: (() => void)[] = [];
  private node: NodeInit = {};
  private isClosed = false;

  constructor(
    readonly coordinator: Coordinator | OpenCoordinate,
    readonly identity: PeerIdentity,
    opts: { reading?: boolean } = {},
  ) {
    if (typeof coordinator === "function") {
      this.closed = this.consume(coordinator(this.requests, this.abort.signal));
      return;
    }
    const stream = coordinator.coordinate(identity, this.requests, this.abort.signal);
    if (opts.reading === false) {
      // Started (as a server starts a handler) but never read past the first response.
      this.firstUnread = stream.next();
      this.unread = stream;
      this.closed = new Promise(() => undefined);
    } else {
      this.closed = this.consume(stream);
    }
  }

  /** The response stream of a peer made with `reading: false`, for a test to read late, after {@link firstUnread}. */
  unread: AsyncGenerator<CoordinateResponse> | undefined;
  firstUnread: Promise<IteratorResult<CoordinateResponse>> | undefined;

  /** An agent peer (its own addresses allowed) with a fresh or given id. */
  static agent(coordinator: Coordinator, id: string = randomUUID(), opts?: { reading?: boolean }): TestPeer {
    return new TestPeer(coordinator, { id, name: `agent-${id.slice(0, 8)}`, kind: "agent", auth: agentCoordinateeAuth(id) }, opts);
  }

  /** A client peer bound to `agentId`. */
  static client(coordinator: Coordinator, agentId: string, id: string = randomUUID(), opts?: { reading?: boolean }): TestPeer {
    return new TestPeer(coordinator, { id, name: `client-${id.slice(0, 8)}`, kind: "client", auth: clientCoordinateeAuth(agentId) }, opts);
  }

  /**
   * An agent on `agentSide` and its client on `clientSide` with a tunnel between them, each
   * having heard the other's first node (agent DERP 1, client DERP 2).
   */
  static async pair(agentSide: Coordinator, clientSide = agentSide): Promise<{ agent: TestPeer; client: TestPeer }> {
    const agent = TestPeer.agent(agentSide);
    const client = TestPeer.client(clientSide, agent.id);
    client.addTunnel(agent.id);
    agent.updateDERP(1);
    client.updateDERP(2);
    await client.waitForDERP(agent.id, 1);
    await agent.waitForDERP(client.id, 2);
    return { agent, client };
  }

  get id(): string {
    return this.identity.id;
  }

  send(init: Parameters<typeof create<typeof CoordinateRequestSchema>>[1]): void {
    this.requests.push(init);
  }

  /** update_self with the node so far, changed by `patch`; an agent's node carries its own address. */
  updateNode(patch: NodeInit): void {
    this.node = { ...this.node, ...patch };
    this.send({ updateSelf: { node: create(NodeSchema, this.node) } });
  }

  updateDERP(region: number): void {
    const addresses = this.identity.kind === "agent" ? [`${agentAddresses(this.id)[0]}/128`] : [];
    this.updateNode({ preferredDerp: region, addresses });
  }

  addTunnel(dst: string): void {
    this.send({ addTunnel: { id: uuidToBytes(dst) } });
  }

  removeTunnel(dst: string): void {
    this.send({ removeTunnel: { id: uuidToBytes(dst) } });
  }

  readyForHandshake(dst: string): void {
    this.send({ readyForHandshake: [{ id: uuidToBytes(dst) }] });
  }

  disconnect(): void {
    this.send({ disconnect: {} });
  }

  /** Ends the request stream without a disconnect: the coordinator sees a dropped peer. */
  drop(): void {
    this.requests.end();
  }

  /** Aborts the stream, as a closed connection does. */
  cancel(): void {
    this.abort.abort();
  }

  /** Resolves once `check` holds for what this peer has heard; fails after a bound. */
  async until(what: string, check: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
    if (check()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`${this.identity.name}: ${what} not seen within ${timeoutMs} ms; heard ${this.describe()}`));
      }, timeoutMs);
      const listener = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      };
      this.listeners.push(listener);
    });
  }

  waitForDERP(id: string, region: number): Promise<void> {
    return this.until(`DERP ${region} of ${id}`, () => {
      const h = this.heard.get(id);
      return h?.kind === Kind.NODE && h.node?.preferredDerp === region;
    });
  }

  waitForKind(id: string, kind: Kind, reason?: string): Promise<void> {
    return this.until(`${Kind[kind]}${reason ? ` (${reason})` : ""} of ${id}`, () => {
      const h = this.heard.get(id);
      return h?.kind === kind && (reason === undefined || h.reason === reason);
    });
  }

  waitForError(text: string): Promise<void> {
    return this.until(`error "${text}"`, () => this.errors.includes(text));
  }

  waitForClose(): Promise<void> {
    return this.until("end of responses", () => this.isClosed);
  }

  /**
   * A peer whose Coordinate stream is an RPC (through a tunnel, on another process): `id` is the
   * id the server gave it (an agent's id; a client's, from its resume token), `kind` picks the
   * addresses {@link updateDERP} claims. The server does the authorization.
   */
  static remote(open: OpenCoordinate, id: string, kind: PeerIdentity["kind"]): TestPeer {
    return new TestPeer(open, { id, name: `${kind}-${id.slice(0, 8)}`, kind, auth: () => undefined });
  }

  private async consume(stream: AsyncIterable<CoordinateResponse>): Promise<Error | undefined> {
    try {
      for await (const res of stream) this.record(res);
      return undefined;
    } catch (err) {
      return err as Error;
    } finally {
      this.isClosed = true;
      this.notify();
    }
  }

  /** Records a response, as a peer would apply it. */
  record(res: CoordinateResponse): void {
    if (res.error !== "") this.errors.push(res.error);
    for (const u of res.peerUpdates) {
      this.updates.push(u);
      const id = uuidFromBytes(u.id, "peer update");
      if (u.kind === Kind.READY_FOR_HANDSHAKE) {
        const prev = this.heard.get(id);
        this.heard.set(id, { ...prev, kind: u.kind, reason: u.reason });
      } else {
        this.heard.set(id, { kind: u.kind, node: u.node, reason: u.reason });
      }
    }
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private describe(): string {
    const parts = [...this.heard].map(([id, h]) => `${id.slice(0, 8)}=${Kind[h.kind]}${h.node ? `/derp${h.node.preferredDerp}` : ""}(${h.reason})`);
    return `{${parts.join(", ")}} errors=${JSON.stringify(this.errors)} closed=${this.isClosed}`;
  }
}
