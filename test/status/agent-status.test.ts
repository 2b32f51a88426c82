import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { agentStatus, type AgentStatusInput } from "../../src/status/agent-status.js";

const NOW = new Date("2030-06-01T12:00:00Z");
const INACTIVE_MS = 30_000;
const ago = (ms: number) => new Date(NOW.getTime() - ms);

function row(p: Partial<AgentStatusInput>): AgentStatusInput {
  return { createdAt: ago(3_600_000), firstConnectedAt: null, lastConnectedAt: null, disconnectedAt: null, connectionTimeoutSeconds: 0, ...p };
}

describe("agentStatus", () => {
  describe("rule 1: never connected", () => {
    it("is connecting when the connection timeout is disabled (0), however old", () => {
      assert.equal(agentStatus(row({ createdAt: ago(86_400_000) }), NOW, INACTIVE_MS).status, "connecting");
    });
    it("is connecting when created exactly connection_timeout_seconds ago", () => {
      assert.equal(agentStatus(row({ createdAt: ago(120_000), connectionTimeoutSeconds: 120 }), NOW, INACTIVE_MS).status, "connecting");
    });
    it("is timeout one millisecond past connection_timeout_seconds", () => {
      assert.equal(agentStatus(row({ createdAt: ago(120_001), connectionTimeoutSeconds: 120 }), NOW, INACTIVE_MS).status, "timeout");
    });
  });

  describe("rule 2: disconnected_at not before last_connected_at", () => {
    it("is disconnected when disconnected_at equals last_connected_at", () => {
      const at = ago(1000);
      const r = agentStatus(row({ firstConnectedAt: at, lastConnectedAt: at, disconnectedAt: at }), NOW, INACTIVE_MS);
      assert.deepEqual(r, { status: "disconnected", disconnectedAt: at });
    });
    it("is disconnected when disconnected_at is after last_connected_at", () => {
      const r = agentStatus(row({ firstConnectedAt: ago(5000), lastConnectedAt: ago(5000), disconnectedAt: ago(1000) }), NOW, INACTIVE_MS);
      assert.deepEqual(r, { status: "disconnected", disconnectedAt: ago(1000) });
    });
    it("is connected when disconnected_at is one millisecond before last_connected_at", () => {
      const r = agentStatus(row({ firstConnectedAt: ago(5000), lastConnectedAt: ago(1000), disconnectedAt: ago(1001) }), NOW, INACTIVE_MS);
      assert.equal(r.status, "connected");
    });
  });

  describe("rule 3: inactive longer than the timeout", () => {
    it("is connected when last_connected_at is exactly the inactive timeout ago", () => {
      const r = agentStatus(row({ firstConnectedAt: ago(60_000), lastConnectedAt: ago(INACTIVE_MS) }), NOW, INACTIVE_MS);
      assert.equal(r.status, "connected");
    });
    it("is disconnected one millisecond later, reported as of last_connected_at", () => {
      const last = ago(INACTIVE_MS + 1);
      const r = agentStatus(row({ firstConnectedAt: ago(60_000), lastConnectedAt: last }), NOW, INACTIVE_MS);
      assert.deepEqual(r, { status: "disconnected", disconnectedAt: last });
    });
  });

  describe("rule 4", () => {
    it("is connected with a recent last_connected_at and no disconnected_at", () => {
      const r = agentStatus(row({ firstConnectedAt: ago(1000), lastConnectedAt: ago(1000) }), NOW, INACTIVE_MS);
      assert.deepEqual(r, { status: "connected", disconnectedAt: null });
    });
  });

  it("rule 1 wins over a connection timeout once the agent has connected", () => {
    const r = agentStatus(row({ createdAt: ago(86_400_000), connectionTimeoutSeconds: 1, firstConnectedAt: ago(1000), lastConnectedAt: ago(1000) }), NOW, INACTIVE_MS);
    assert.equal(r.status, "connected");
  });
});
