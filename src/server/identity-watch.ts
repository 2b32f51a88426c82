import { Code, ConnectError } from "@connectrpc/connect";
import type { AgentIdentity } from "../auth/agent-identity.js";
import type { LookupAgentByToken } from "../auth/authenticate.js";
import { TokenCache, type TokenCacheLimits } from "../auth/token-cache.js";
import type { Queryable } from "../db/database.js";
import { AGENT_IDENTITY_CHANNEL, parseAgentIdentityEvent, type AgentIdentityEvent } from "../db/events.js";
import type { Pubsub } from "../db/pubsub.js";
import { checkHeldIdentities } from "../db/queries/agent-identities.js";
import { getTokenAgent } from "../db/queries/agent-tokens.js";
import type { Logger } from "../log.js";
import { agentNotFound } from "../agentapi/caller.js";
import { databaseUnavailable } from "../agentapi/rpc-errors.js";

/** Why a tunnel's identity ended: a fixed set, for the eviction metric and the log line. */
export type RevocationReason = "agent_deleted" | "token_revoked" | "build_outdated";

/** The WebSocket close reason of each revocation. */
const CLOSE_REASONS: Record<RevocationReason, string> = {
  agent_deleted: "workspace agent deleted",
  token_revoked: "agent token revoked",
  build_outdated: "build is outdated",
};

/**
 * When an RPC's own re-read finds its identity ended, the tunnel is cut this long after: time for
 * that RPC's refusal to reach the agent, which cutting at once would lose with the tunnel.
 */
const CUT_AFTER_REFUSAL_MS = 250;

/** Identities one sweep statement re-checks at most; a larger fleet takes several. */
const SWEEP_CHUNK = 5_000;

/** What a tunnel hands the watch when it starts. */
export interface HeldAdmission {
  identity: AgentIdentity;
  /** The token it authenticated with: a changed token ends the identity. */
  token: string;
  /** Date.now() before its token was looked up: an event since may have been missed by that lookup. */
  lookedUpAt: number;
}

/** Ends a tunnel: closes its WebSocket with the reason. */
export type CutTunnel = (reason: RevocationReason, closeReason: string) => void;

/** The part of the watch an RPC handler uses: may this identity still be served? */
export interface IdentityCheck {
  /**
   * Resolves when the caller may be served, without a statement while events are flowing;
   * rejects with the ConnectError it must answer (NotFound for a deleted agent) otherwise.
   */
  check(identity: AgentIdentity): Promise<void>;
}

export interface IdentityWatchOptions {
  /** Where the per-RPC fallback reads (an RPC is waiting on it). */
  db: Queryable;
  /** Where sweeps and re-checks of new tunnels read. */
  background: Queryable;
  pubsub: Pubsub;
  /** Every live tunnel is re-checked this often, in one statement, as a backstop to the events. */
  sweepIntervalMs: number;
  logger: Logger;
  tokenCache?: TokenCacheLimits;
}

/** One live tunnel's identity. */
interface Held {
  admission: HeldAdmission;
  cut: CutTunnel;
  /** Set once the identity ended: what its RPCs answer from then on. */
  refusal?: ConnectError;
}

/**
 * The identities this process serves, kept current by the database's `agent_identity` events
 * instead of a statement per RPC. Each live tunnel holds its identity; an event naming its agent
 * or workspace (deleted, token changed, new build) cuts the tunnel at once and refuses its later
 * RPCs. The plain port's token lookups are cached and dropped by the same events. While events
 * may be missed (the LISTEN connection lost, or back but not yet re-synced) every RPC re-reads
 * instead, and the cache is bypassed. A sweep re-checks every live tunnel in one statement per
 * interval; a failed sweep (the database down) cuts nothing: liveness comes from pings.
 */
export class IdentityWatch implements IdentityCheck {
  private readonly byIdentity = new WeakMap<AgentIdentity, Held>();
  private readonly byAgent = new Map<string, Set<Held>>();
  private readonly byWorkspace = new Map<string, Set<Held>>();
  private readonly tokens: TokenCache;
  /** True after events may have been missed, until a sweep that started while listening succeeds. */
  private resyncing = true;
  /** Counts the times events may have been missed, so a sweep from before one can't end the resync. */
  private misses = 0;
  /** When the last event (or a possible miss) was handled: a lookup older than that may be stale. */
  private lastChangeAt = 0;
  private sweeping: Promise<void> | undefined;
  private sweepAgain = false;
  private sweepFailing = false;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** New tunnels whose lookup may predate an event, re-checked together. */
  private pending = new Set<Held>();
  private pendingFlush: Promise<void> | undefined;

  private constructor(private readonly options: IdentityWatchOptions) {
    this.tokens = new TokenCache(options.tokenCache);
  }

  /** Subscribes to the events and starts the sweep. */
  static async start(options: IdentityWatchOptions): Promise<IdentityWatch> {
    const watch = new IdentityWatch(options);
    watch.unsubscribe = await options.pubsub.subscribe(
      AGENT_IDENTITY_CHANNEL,
      (payload) => watch.onEvent(parseAgentIdentityEvent(payload)),
      () => watch.missed(),
    );
    // Nothing is held yet, so listening is all it takes to trust the events.
    if (options.pubsub.isListening()) watch.resyncing = false;
    watch.timer = setInterval(() => void watch.sweep(), options.sweepIntervalMs);
    watch.timer.unref();
    return watch;
  }

  /** Whether events are trusted right now: listening, and re-synced since the last possible miss. */
  get live(): boolean {
    if (!this.options.pubsub.isListening()) {
      if (!this.resyncing) this.missed();
      else this.misses++;
      return false;
    }
    return !this.resyncing;
  }

  /** Tunnels held now. */
  get heldCount(): number {
    let n = 0;
    for (const set of this.byAgent.values()) n += set.size;
    return n;
  }

  /**
   * Holds a new tunnel's identity; returns the release for its end. A lookup that may have
   * missed an event, or one made while events weren't trusted, is re-checked at once.
   */
  hold(admission: HeldAdmission, cut: CutTunnel): () => void {
    const held: Held = { admission, cut };
    const { agentId, workspaceId } = admission.identity;
    this.byIdentity.set(admission.identity, held);
    add(this.byAgent, agentId, held);
    add(this.byWorkspace, workspaceId, held);
    if (!this.live || admission.lookedUpAt <= this.lastChangeAt) this.recheckSoon(held);
    return () => {
      remove(this.byAgent, agentId, held);
      remove(this.byWorkspace, workspaceId, held);
      this.pending.delete(held);
    };
  }

  async check(identity: AgentIdentity): Promise<void> {
    const held = this.byIdentity.get(identity);
    // Not a tunnel's: a plain-port identity, resolved for this very call.
    if (held === undefined) return;
    if (held.refusal !== undefined) throw held.refusal;
    if (this.live && !this.pending.has(held)) return;
    try {
      await this.recheck([held], this.options.db, CUT_AFTER_REFUSAL_MS);
    } catch (err) {
      throw databaseUnavailable(err);
    }
    if (held.refusal !== undefined) throw held.refusal;
  }

  /** The plain port's token lookup: from the cache while events are trusted, else from the database. */
  readonly lookup: LookupAgentByToken = async (token) => {
    const live = this.live;
    if (live) {
      const cached = this.tokens.get(token);
      if (cached !== undefined) return cached;
    }
    const lookedUpAt = Date.now();
    const found = await getTokenAgent(this.options.db, token);
    // Kept only if no event could have changed it since the read began.
    if (found !== undefined && live && this.live && lookedUpAt > this.lastChangeAt) this.tokens.set(token, found);
    return found;
  };

  /**
   * Re-checks every held identity now, one statement per {@link SWEEP_CHUNK}; a failure is
   * logged, nothing cut. Asked while one runs, another follows it.
   */
  sweep(): Promise<void> {
    if (this.sweeping !== undefined) {
      this.sweepAgain = true;
      return this.sweeping;
    }
    this.sweeping = (async () => {
      do {
        this.sweepAgain = false;
        await this.runSweep();
      } while (this.sweepAgain);
    })().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.tokens.clear();
  }

  private async runSweep(): Promise<void> {
    const misses = this.misses;
    const listening = this.options.pubsub.isListening();
    const all: Held[] = [];
    for (const set of this.byAgent.values()) for (const held of set) all.push(held);
    try {
      for (let i = 0; i < all.length; i += SWEEP_CHUNK) await this.recheck(all.slice(i, i + SWEEP_CHUNK), this.options.background);
    } catch (err) {
      if (!this.sweepFailing) this.options.logger.warn({ err }, "identity sweep failed; tunnels kept, RPCs re-read until it succeeds");
      this.sweepFailing = true;
      return;
    }
    if (this.sweepFailing) this.options.logger.info("identity sweep succeeded again");
    this.sweepFailing = false;
    if (listening && this.options.pubsub.isListening() && misses === this.misses) this.resyncing = false;
  }

  /** Events may have been missed: stop trusting them (and the cache) until a sweep re-syncs. */
  private missed(): void {
    this.lastChangeAt = Date.now();
    this.misses++;
    if (!this.resyncing) {
      this.resyncing = true;
      this.tokens.clear();
    }
    if (this.options.pubsub.isListening()) void this.sweep();
  }

  private onEvent(event: AgentIdentityEvent | undefined): void {
    this.lastChangeAt = Date.now();
    if (event === undefined) {
      this.options.logger.warn("agent_identity event not understood; re-checking every tunnel");
      this.tokens.clear();
      void this.sweep();
      return;
    }
    switch (event.kind) {
      case "agent":
        this.tokens.dropAgent(event.agent_id);
        for (const held of [...(this.byAgent.get(event.agent_id) ?? [])]) this.revoke(held, event.deleted ? "agent_deleted" : "token_revoked");
        break;
      case "workspace":
        this.tokens.dropWorkspace(event.workspace_id);
        for (const held of [...(this.byWorkspace.get(event.workspace_id) ?? [])]) this.revoke(held, "agent_deleted");
        break;
      case "build":
        this.tokens.dropWorkspace(event.workspace_id);
        // A new build is numbered past every other, so each other build's agents are outdated.
        for (const held of [...(this.byWorkspace.get(event.workspace_id) ?? [])]) {
          if (held.admission.identity.buildId !== event.build_id) this.revoke(held, "build_outdated");
        }
        break;
    }
  }

  private recheckSoon(held: Held): void {
    this.pending.add(held);
    this.pendingFlush ??= Promise.resolve().then(async () => {
      const batch = [...this.pending];
      try {
        for (let i = 0; i < batch.length; i += SWEEP_CHUNK) await this.recheck(batch.slice(i, i + SWEEP_CHUNK), this.options.background);
      } catch (err) {
        // They stay pending: their RPCs re-read until the sweep gets through.
        this.options.logger.warn({ err }, "re-checking new tunnels' identities failed");
        this.pendingFlush = undefined;
        return;
      }
      for (const h of batch) this.pending.delete(h);
      this.pendingFlush = undefined;
      // Tunnels held while this statement ran get one of their own.
      const next = this.pending.values().next();
      if (!next.done) this.recheckSoon(next.value);
    });
  }

  /** One statement for `held`: revokes the ended (cut after `cutDelayMs`); throws when the database fails. */
  private async recheck(held: Held[], q: Queryable, cutDelayMs = 0): Promise<void> {
    const live = held.filter((h) => h.refusal === undefined);
    const states = await checkHeldIdentities(q, live.map((h) => ({ agentId: h.admission.identity.agentId, token: h.admission.token })));
    live.forEach((h, i) => {
      const state = states[i];
      if (state === undefined) this.revoke(h, "agent_deleted", cutDelayMs);
      else if (!state.tokenMatches) this.revoke(h, "token_revoked", cutDelayMs);
      else if (state.latestBuildId !== h.admission.identity.buildId) this.revoke(h, "build_outdated", cutDelayMs);
      else this.pending.delete(h);
    });
  }

  private revoke(held: Held, reason: RevocationReason, cutDelayMs = 0): void {
    if (held.refusal !== undefined) return;
    const { agentId, workspaceId } = held.admission.identity;
    held.refusal = refusalOf(reason, agentId);
    remove(this.byAgent, agentId, held);
    remove(this.byWorkspace, workspaceId, held);
    this.pending.delete(held);
    if (cutDelayMs === 0) held.cut(reason, CLOSE_REASONS[reason]);
    else setTimeout(() => held.cut(reason, CLOSE_REASONS[reason]), cutDelayMs).unref();
  }
}

/** What later RPCs of an ended identity answer: NotFound once deleted, as every RPC did by re-reading. */
function refusalOf(reason: RevocationReason, agentId: string): ConnectError {
  switch (reason) {
    case "agent_deleted":
      return agentNotFound(agentId);
    case "token_revoked":
      return new ConnectError("Workspace agent not authorized: its token was revoked.", Code.Unauthenticated);
    case "build_outdated":
      return new ConnectError("Agent trying to connect from non-latest build: build is outdated.", Code.PermissionDenied);
  }
}

function add(map: Map<string, Set<Held>>, key: string, held: Held): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(held);
}

function remove(map: Map<string, Set<Held>>, key: string, held: Held): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(held);
  if (set.size === 0) map.delete(key);
}
