import { it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { listReplicas, upsertReplica } from "../../src/db/queries/replicas.js";
import { silentLogger } from "../../src/log.js";
import { registerReplica } from "../../src/server/replica-registration.js";
import { forEachEngine } from "../support/database.js";

forEachEngine((t) => {
  it("a replica registers itself, prunes replicas gone past the stale bound, and removes its row at stop", async () => {
    const now = Date.now();
    const dead = randomUUID();
    const quiet = randomUUID();
    await upsertReplica(t.db, { id: dead, hostname: "gone", startedAt: new Date(now - 7_200_000), updatedAt: new Date(now - 3_600_000) });
    await upsertReplica(t.db, { id: quiet, hostname: "alive", startedAt: new Date(now - 60_000), updatedAt: new Date(now - 30_000) });
    const self = randomUUID();
    const replica = await registerReplica(t.db, self, silentLogger(), { refreshMs: 60_000, staleAfterMs: 600_000 });
    const ids = (await listReplicas(t.db, new Date(0))).map((r) => r.id);
    assert.ok(ids.includes(self), "its own row");
    assert.ok(ids.includes(quiet), "a replica within the bound stays");
    assert.ok(!ids.includes(dead), "a replica past the bound is pruned");
    await replica.stop();
    assert.ok(!(await listReplicas(t.db, new Date(0))).some((r) => r.id === self));
  });
});
