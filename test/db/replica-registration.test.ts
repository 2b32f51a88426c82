import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { it } from "node:test";
import { listReplicas, upsertReplica } from "../../src/db/queries/replicas.js";
import { silentLogger } from "../../src/log.js";
import { registerReplica, REPLICA_STALE_MS } from "../../src/server/replica-registration.js";
import { forEachEngine } from "../support/database.js";

forEachEngine((t) => {
  it("registering prunes the rows of replicas silent for REPLICA_STALE_MS, keeps the living, and stop removes its own", async () => {
    const now = Date.now();
    const dead = randomUUID();
    const alive = randomUUID();
    const startedAt = new Date(now - 3_600_000);
    await upsertReplica(t.db, { id: dead, hostname: "killed", startedAt, updatedAt: new Date(now - REPLICA_STALE_MS - 60_000) });
    await upsertReplica(t.db, { id: alive, hostname: "peer", startedAt, updatedAt: new Date(now - REPLICA_STALE_MS / 2) });
    const me = randomUUID();
    const registration = await registerReplica(t.db, me, silentLogger());
    const ids = async () => (await listReplicas(t.db, new Date(0))).map((r) => r.id).sort();
    assert.deepEqual(await ids(), [alive, me].sort());
    await registration.stop();
    assert.deepEqual(await ids(), [alive]);
  });
});
