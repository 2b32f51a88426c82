import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { it } from "node:test";
import { NIL_UUID } from "../../src/db/enums.js";
import { publishWorkspaceEvent, workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { forEachEngine } from "../support/database.js";
import { Collector } from "../support/events.js";

forEachEngine((t) => {
  async function listen(ownerId: string): Promise<Collector> {
    const c = new Collector();
    await t.db.pubsub.subscribe(workspaceOwnerChannel(ownerId), c.onEvent, c.onError);
    return c;
  }

  it("publishes {kind, workspace_id, agent_id} on workspace_owner:<owner>", async () => {
    const owner = randomUUID();
    const c = await listen(owner);
    const event = { kind: "agt_connection_update", workspace_id: randomUUID(), agent_id: randomUUID() } as const;
    assert.equal(await publishWorkspaceEvent(t.db.pubsub, owner, event), true);
    const [seen] = await c.waitFor(1);
    assert.deepEqual(JSON.parse((seen as { event: string }).event), event);
  });

  it("leaves agent_id out when the event has none", async () => {
    const owner = randomUUID();
    const c = await listen(owner);
    const event = { kind: "stats_update", workspace_id: randomUUID() } as const;
    await publishWorkspaceEvent(t.db.pubsub, owner, event);
    const [seen] = await c.waitFor(1);
    assert.deepEqual(JSON.parse((seen as { event: string }).event), event);
  });

  for (const [why, event] of [
    ["a nil workspace_id", { kind: "state_change", workspace_id: NIL_UUID }],
    ["an empty kind", { kind: "", workspace_id: randomUUID() }],
    ["agt_lifecycle_update without agent_id", { kind: "agt_lifecycle_update", workspace_id: randomUUID() }],
  ] as const) {
    it(`drops an event with ${why} without publishing or throwing`, async () => {
      const owner = randomUUID();
      const c = await listen(owner);
      assert.equal(await publishWorkspaceEvent(t.db.pubsub, owner, event as unknown as WorkspaceEvent), false);
      // A valid event published after it is the first thing the subscriber sees.
      await publishWorkspaceEvent(t.db.pubsub, owner, { kind: "state_change", workspace_id: randomUUID() });
      const [seen] = await c.waitFor(1);
      assert.equal(JSON.parse((seen as { event: string }).event).kind, "state_change");
    });
  }
});
