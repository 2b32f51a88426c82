/**
 * Shared pieces of the Agent API tests: provisioning an agent from a spec (the way
 * `agentgate workspace create` does), a tunnel per test, and Connect error assertions.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Database } from "../../src/db/database.js";
import { createWorkspace, type ProvisionResult } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { dialRawTunnel, type RawTunnel } from "../support/raw-tunnel.js";

/** One provisioned agent, with what events and queries are keyed by. */
export interface ProvisionedAgent {
  agentId: string;
  agentName: string;
  token: string;
  workspaceId: string;
  workspaceName: string;
  ownerId: string;
  owner: string;
  result: ProvisionResult;
}

/** Creates a workspace (unique owner and name) whose first agent is `agent` (a spec agent object). */
export async function provisionAgent(db: Database, agent: Record<string, unknown> = {}): Promise<ProvisionedAgent> {
  const suffix = randomUUID().slice(0, 8);
  const owner = `user-${suffix}`;
  const name = `ws-${suffix}`;
  const result = await createWorkspace(db, { owner, name, spec: parseWorkspaceSpec({ agents: [{ name: "main", ...agent }] }) });
  const { rows } = await db.query<{ owner_id: string }>("SELECT owner_id FROM workspaces WHERE id = $1", [result.workspace_id]);
  const first = result.agents[0]!;
  return {
    agentId: first.id, agentName: first.name, token: first.token, workspaceId: result.workspace_id,
    workspaceName: name, ownerId: rows[0]!.owner_id, owner, result,
  };
}

/** Dials a tunnel for `token`, runs `fn` with it, and closes it whatever happens. */
export async function withTunnel<T>(url: string, token: string, fn: (t: RawTunnel) => Promise<T>, opts: { version?: string } = {}): Promise<T> {
  const tunnel = await dialRawTunnel(url, token, opts);
  try {
    return await fn(tunnel);
  } finally {
    tunnel.ws.close();
    tunnel.session.destroy();
  }
}

/** Asserts the call fails with `code` and a message containing `message`. */
export async function rejectsWith(call: Promise<unknown>, code: Code, message?: string | RegExp): Promise<void> {
  await assert.rejects(call, (err: unknown) => {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], `code (message: ${e.rawMessage})`);
    if (typeof message === "string") assert.ok(e.rawMessage.includes(message), `message "${e.rawMessage}" should include "${message}"`);
    else if (message) assert.match(e.rawMessage, message);
    return true;
  });
}

/** The 16 raw bytes of a UUID. */
export function uuidBytes(uuid: string): Uint8Array {
  return new Uint8Array(Buffer.from(uuid.replaceAll("-", ""), "hex"));
}

/** A UUID string from 16 raw bytes. */
export function uuidString(bytes: Uint8Array): string {
  const h = Buffer.from(bytes).toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** One row of a query, or fails. */
export async function row<T = Record<string, unknown>>(db: Database, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await db.query<T>(sql, params);
  assert.ok(rows[0] !== undefined, `no row for ${sql}`);
  return rows[0];
}

/**
 * Asserts the server cut the tunnel with 1001 and `reason`, as it does the moment the database
 * says the agent's identity ended (deleted, token revoked, a newer build).
 */
export async function assertCut(tunnel: RawTunnel, reason: string): Promise<void> {
  assert.deepEqual(await tunnel.closed, { code: 1001, reason });
}
