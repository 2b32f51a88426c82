import type { TokenLookup } from "../db/queries/agent-tokens.js";

/** Bounds of a {@link TokenCache}. */
export interface TokenCacheLimits {
  /** Tokens kept; the least recently used goes first. */
  maxEntries: number;
  /** How long a lookup is trusted at most, whatever events say. */
  ttlMs: number;
}

/** Default bounds: every agent of a large fleet on the plain port, re-read at least once a minute. */
export const DEFAULT_TOKEN_CACHE: TokenCacheLimits = { maxEntries: 10_000, ttlMs: 60_000 };

interface Entry {
  lookup: TokenLookup;
  expiresAt: number;
}

/**
 * Token lookups of plain-port callers, kept so that each call needs no statement: least recently
 * used out past `maxEntries`, re-read after `ttlMs`, and dropped by agent or workspace the moment
 * an identity event names them. Only found agents are kept, so unknown tokens can't fill it.
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byAgent = new Map<string, Set<string>>();
  private readonly byWorkspace = new Map<string, Set<string>>();

  constructor(private readonly limits: TokenCacheLimits = DEFAULT_TOKEN_CACHE) {}

  get size(): number {
    return this.entries.size;
  }

  get(token: string, now = Date.now()): TokenLookup | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.delete(token);
      return undefined;
    }
    // Re-inserted so the Map's order stays least recently used first.
    this.entries.delete(token);
    this.entries.set(token, entry);
    return entry.lookup;
  }

  set(token: string, lookup: TokenLookup, now = Date.now()): void {
    if (this.limits.maxEntries <= 0) return;
    this.delete(token);
    while (this.entries.size >= this.limits.maxEntries) this.delete(this.entries.keys().next().value!);
    this.entries.set(token, { lookup, expiresAt: now + this.limits.ttlMs });
    index(this.byAgent, lookup.agentId, token);
    index(this.byWorkspace, lookup.workspaceId, token);
  }

  /** Drops every token of the agent. */
  dropAgent(agentId: string): void {
    for (const token of this.byAgent.get(agentId) ?? []) this.delete(token);
  }

  /** Drops every token of the workspace's agents. */
  dropWorkspace(workspaceId: string): void {
    for (const token of this.byWorkspace.get(workspaceId) ?? []) this.delete(token);
  }

  clear(): void {
    this.entries.clear();
    this.byAgent.clear();
    this.byWorkspace.clear();
  }

  private delete(token: string): void {
    const entry = this.entries.get(token);
    if (entry === undefined) return;
    this.entries.delete(token);
    unindex(this.byAgent, entry.lookup.agentId, token);
    unindex(this.byWorkspace, entry.lookup.workspaceId, token);
  }
}

function index(map: Map<string, Set<string>>, key: string, token: string): void {
  let set = map.get(key);
  if (set === undefined) map.set(key, (set = new Set()));
  set.add(token);
}

function unindex(map: Map<string, Set<string>>, key: string, token: string): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(token);
  if (set.size === 0) map.delete(key);
}
