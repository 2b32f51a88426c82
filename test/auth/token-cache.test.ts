import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { TokenCache } from "../../src/auth/token-cache.js";
import type { TokenLookup } from "../../src/db/queries/agent-tokens.js";

function lookup(agentId = randomUUID(), workspaceId = randomUUID()): TokenLookup {
  const buildId = randomUUID();
  return {
    agentId, agentName: "main", workspaceId, workspaceName: "ws", ownerId: randomUUID(), ownerUsername: "alice",
    buildId, buildNumber: 1, latestBuildId: buildId,
  };
}

describe("the plain port's token cache", () => {
  it("holds at most maxEntries, dropping the least recently used", () => {
    const cache = new TokenCache({ maxEntries: 2, ttlMs: 60_000 });
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    cache.set(a, lookup());
    cache.set(b, lookup());
    assert.ok(cache.get(a), "a is now the most recently used");
    cache.set(c, lookup());
    assert.equal(cache.size, 2);
    assert.ok(cache.get(a));
    assert.equal(cache.get(b), undefined);
    assert.ok(cache.get(c));
  });

  it("forgets a lookup after its TTL", () => {
    const cache = new TokenCache({ maxEntries: 10, ttlMs: 1_000 });
    const token = randomUUID();
    cache.set(token, lookup(), 0);
    assert.ok(cache.get(token, 999));
    assert.equal(cache.get(token, 1_000), undefined);
    assert.equal(cache.size, 0);
  });

  it("drops by agent and by workspace, as identity events name them", () => {
    const cache = new TokenCache({ maxEntries: 10, ttlMs: 60_000 });
    const workspace = randomUUID();
    const [one, two, other] = [randomUUID(), randomUUID(), randomUUID()];
    const agentOne = randomUUID();
    cache.set(one, lookup(agentOne, workspace));
    cache.set(two, lookup(randomUUID(), workspace));
    cache.set(other, lookup());
    cache.dropAgent(agentOne);
    assert.equal(cache.get(one), undefined);
    assert.ok(cache.get(two));
    cache.dropWorkspace(workspace);
    assert.equal(cache.get(two), undefined);
    assert.ok(cache.get(other));
    assert.equal(cache.size, 1);
  });
});
