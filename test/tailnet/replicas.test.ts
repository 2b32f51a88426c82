/**
 * Several coordinator replicas in one process, each on its own `Database` handle to one
 * PostgreSQL database, as several `serve` processes would be: peers on different replicas
 * coordinate through the tables and NOTIFY alone. PostgreSQL only (PGlite is one process).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { CoordinateResponse_PeerUpdate_Kind as Kind } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { Coordinator, UNHEALTHY_ERROR, type CoordinatorOptions } from "../../src/tailnet/coordinator.js";
import { FAILED_HEARTBEATS_UNHEALTHY } from "../../src/tailnet/replica-heartbeats.js";
import { silentLogger } from "../../src/log.js";
import { useTestDatabase } from "../support/database.js";
import { eventually } from "../support/agent-server.js";
import { TestPeer } from "../support/tailnet-peer.js";

/** Short enough for tests, long enough that a busy machine does not miss 5 heartbeats in a row. */
const HEARTBEAT_MS = 200;
const REPLICA_TIMEOUT_MS = 1_000;

describe("coordinator replicas on one PostgreSQL", { skip: process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL" }, () => {
  const replicas: Coordinator[] = [];
  const handles: Database[] = [];
  // Registered before the database's own hook, so replicas close while it still exists.
  after(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    await Promise.all(handles.map((h) => h.close()));
  });
  const t = useTestDatabase("pg");
  const roles: string[] = [];

  async function replica(db?: Database, extra: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
    const c = await Coordinator.start({
      db: db ?? (await t.testDb.open()),
      replicaId: randomUUID(),
      logger: silentLogger(),
      heartbeatIntervalMs: HEARTBEAT_MS,
      replicaTimeoutMs: REPLICA_TIMEOUT_MS,
      retryMs: 50,
      ...extra,
    });
    replicas.push(c);
    return c;
  }

  /** Runs SQL as the database owner, outside any replica's handle (`url`: another database of the server). */
  async function admin(sql: string, url = t.testDb.options.databaseUrl): Promise<void> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  /** A database handle logged in as a role of its own, whose table rights a test can take away. */
  async function handleAsOwnRole(): Promise<{ db: Database; revoke(): Promise<void>; grant(): Promise<void> }> {
    const role = `agentgate_replica_${randomBytes(4).toString("hex")}`;
    roles.push(role);
    const tables = "tailnet_coordinators, tailnet_peers, tailnet_tunnels";
    await admin(`CREATE ROLE ${role} LOGIN; GRANT ALL ON ${tables} TO ${role}`);
    const url = new URL(t.testDb.options.databaseUrl!);
    url.username = role;
    const db = await openDatabase({ databaseUrl: url.toString() });
    handles.push(db);
    return {
      db,
      revoke: () => admin(`REVOKE ALL ON ${tables} FROM ${role}`),
      grant: () => admin(`GRANT ALL ON ${tables} TO ${role}`),
    };
  }

  after(async () => {
    // After the database is dropped, the roles own nothing.
    for (const role of roles) await admin(`DROP ROLE IF EXISTS ${role}`, process.env.TEST_DATABASE_URL);
  });

  let r1: Coordinator;
  let r2: Coordinator;
  before(async () => {
    r1 = await replica();
    r2 = await replica();
  });

  test("an agent on replica 1 and its clients on replicas 1 and 2 see every update, both ways", async () => {
    const agent = TestPeer.agent(r1);
    const near = TestPeer.client(r1, agent.id);
    const far = TestPeer.client(r2, agent.id);
    near.addTunnel(agent.id);
    far.addTunnel(agent.id);
    agent.updateDERP(1);
    near.updateDERP(11);
    far.updateDERP(12);
    await near.waitForDERP(agent.id, 1);
    await far.waitForDERP(agent.id, 1);
    await agent.waitForDERP(near.id, 11);
    await agent.waitForDERP(far.id, 12);
    agent.updateDERP(2);
    far.updateDERP(22);
    await near.waitForDERP(agent.id, 2);
    await far.waitForDERP(agent.id, 2);
    await agent.waitForDERP(far.id, 22);
    assert.equal(r1.counters().replicasSeen, 2);
  });

  test("ready_for_handshake crosses replicas along a tunnel", async () => {
    const agent = TestPeer.agent(r1);
    const client = TestPeer.client(r2, agent.id);
    client.addTunnel(agent.id);
    client.updateDERP(3);
    await agent.waitForDERP(client.id, 3);
    agent.readyForHandshake(client.id);
    await client.waitForKind(agent.id, Kind.READY_FOR_HANDSHAKE);
  });

  test("graceful disconnect and remove_tunnel reach the other replica with their reasons", async () => {
    const agent = TestPeer.agent(r1);
    const leaving = TestPeer.client(r2, agent.id);
    const untunnelling = TestPeer.client(r2, agent.id);
    for (const c of [leaving, untunnelling]) {
      c.addTunnel(agent.id);
      c.updateDERP(4);
    }
    await agent.waitForDERP(leaving.id, 4);
    await agent.waitForDERP(untunnelling.id, 4);
    leaving.disconnect();
    untunnelling.removeTunnel(agent.id);
    await agent.waitForKind(leaving.id, Kind.DISCONNECTED, "graceful disconnect");
    await agent.waitForKind(untunnelling.id, Kind.DISCONNECTED, "tunnel removed");
  });

  test("closing a replica makes its peers LOST for the others; their rows stay and another replica returns their last nodes", async () => {
    const r3 = await replica();
    const agent = TestPeer.agent(r3);
    const client = TestPeer.client(r1, agent.id);
    client.addTunnel(agent.id);
    agent.updateDERP(5);
    await client.waitForDERP(agent.id, 5);
    await r3.close();
    await client.waitForKind(agent.id, Kind.LOST);
    assert.equal((await r2.node(agent.id))?.preferredDerp, 5);
    // The agent comes back through another replica: the client, whose tunnel stayed, sees NODE again.
    const back = TestPeer.agent(r2, agent.id);
    back.updateDERP(6);
    await client.waitForDERP(agent.id, 6);
  });

  test("the same agent on two replicas with a client on a third: the newer node wins, and the older when the newer goes", async () => {
    const r3 = await replica();
    const id = randomUUID();
    const older = TestPeer.agent(r1, id);
    const client = TestPeer.client(r3, id);
    client.addTunnel(id);
    older.updateDERP(7);
    await client.waitForDERP(id, 7);
    const newer = TestPeer.agent(r2, id);
    newer.updateDERP(8);
    await client.waitForDERP(id, 8);
    newer.drop();
    await client.waitForDERP(id, 7);
    assert.ok(!client.updates.some((u) => u.kind === Kind.LOST || u.kind === Kind.DISCONNECTED), "a fallback, not a loss");
  });

  test("23 rapid node updates arrive in order and the last one wins", async () => {
    const agent = TestPeer.agent(r1);
    const client = TestPeer.client(r2, agent.id);
    client.addTunnel(agent.id);
    agent.updateDERP(1);
    await client.waitForDERP(agent.id, 1);
    for (let region = 2; region <= 23; region++) agent.updateDERP(region);
    await client.waitForDERP(agent.id, 23);
    const seen = client.updates.filter((u) => u.kind === Kind.NODE).map((u) => u.node!.preferredDerp);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), `in order: ${seen.join(",")}`);
    assert.equal(new Set(seen).size, seen.length, "none twice");
  });

  test("a replica whose database fails: its peers are LOST (never DISCONNECTED) to the others and come back through another replica", async () => {
    const failing = await handleAsOwnRole();
    const r3 = await replica(failing.db);
    const agent = TestPeer.agent(r3);
    const client = TestPeer.client(r1, agent.id);
    client.addTunnel(agent.id);
    agent.updateDERP(9);
    await client.waitForDERP(agent.id, 9);
    await failing.revoke();
    await client.waitForKind(agent.id, Kind.LOST);
    await agent.waitForError(UNHEALTHY_ERROR);
    await agent.waitForClose();
    const back = TestPeer.agent(r2, agent.id);
    back.updateDERP(10);
    await client.waitForDERP(agent.id, 10);
    assert.ok(!client.updates.some((u) => u.kind === Kind.DISCONNECTED));
    await failing.grant();
  });

  test(`${FAILED_HEARTBEATS_UNHEALTHY} failed heartbeats close the replica's peers and refuse new ones until a heartbeat succeeds`, async () => {
    const failing = await handleAsOwnRole();
    const r3 = await replica(failing.db);
    const agent = TestPeer.agent(r3);
    agent.updateDERP(1);
    await eventually(async () => ((await r1.node(agent.id)) ? true : undefined), 5_000, "the agent's row");
    const failuresBefore = r3.counters().heartbeatFailures;
    await failing.revoke();
    await agent.waitForError(UNHEALTHY_ERROR);
    await agent.waitForClose();
    assert.ok(r3.counters().heartbeatFailures - failuresBefore >= FAILED_HEARTBEATS_UNHEALTHY);
    const refused = TestPeer.agent(r3);
    await refused.waitForError(UNHEALTHY_ERROR);
    await refused.waitForClose();
    await failing.grant();
    await eventually(async () => (r3.isHealthy ? true : undefined), 5_000, "healthy again");
    const accepted = TestPeer.agent(r3, agent.id);
    const client = TestPeer.client(r1, agent.id);
    client.addTunnel(agent.id);
    accepted.updateDERP(2);
    await client.waitForDERP(agent.id, 2);
  });

  test("heartbeats are spaced by more than three quarters of the period", async () => {
    await admin(`
      CREATE TABLE heartbeat_log (id uuid, at timestamptz);
      CREATE FUNCTION log_heartbeat() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO heartbeat_log VALUES (NEW.id, NEW.heartbeat_at); RETURN NEW; END $$;
      CREATE TRIGGER log_heartbeat AFTER INSERT OR UPDATE ON tailnet_coordinators FOR EACH ROW EXECUTE FUNCTION log_heartbeat();`);
    const r3 = await replica();
    const id = (r3 as unknown as { self: string }).self;
    const beats = await eventually(async () => {
      const { rows } = await t.db.query<{ at: Date }>("SELECT at FROM heartbeat_log WHERE id = $1 ORDER BY at", [id]);
      return rows.length >= 6 ? rows.map((r) => r.at.getTime()) : undefined;
    }, 10_000, "6 heartbeats");
    const gaps = beats.slice(1).map((at, i) => at - beats[i]!);
    assert.ok(gaps.every((g) => g > HEARTBEAT_MS * 0.75), `gaps ${gaps.join(", ")} ms`);
    await r3.close();
  });

  test("cleanup deletes lost peers, dead replicas and orphan tunnels past the retention, and keeps the rest", async () => {
    const dead = randomUUID();
    const old = "now() - interval '25 hours'";
    const lostPeer = randomUUID();
    const keptPeer = randomUUID();
    await admin(`
      INSERT INTO tailnet_coordinators VALUES ('${dead}', ${old});
      INSERT INTO tailnet_peers VALUES ('${randomUUID()}', '${dead}', ${old}, NULL, 'ok', '');
      INSERT INTO tailnet_tunnels VALUES ('${dead}', '${randomUUID()}', '${randomUUID()}', ${old});`);
    const r3 = await replica(undefined, { cleanupIntervalMs: 100 });
    const self = (r3 as unknown as { self: string }).self;
    await admin(`
      INSERT INTO tailnet_peers VALUES ('${lostPeer}', '${self}', ${old}, NULL, 'lost', '');
      INSERT INTO tailnet_peers VALUES ('${keptPeer}', '${self}', ${old}, NULL, 'ok', '');
      INSERT INTO tailnet_tunnels VALUES ('${self}', '${lostPeer}', '${keptPeer}', ${old});
      INSERT INTO tailnet_tunnels VALUES ('${self}', '${keptPeer}', '${lostPeer}', ${old});`);
    await eventually(async () => {
      const { rows } = await t.db.query<{ n: number }>(
        "SELECT (SELECT count(*) FROM tailnet_coordinators WHERE id = $1)::int + (SELECT count(*) FROM tailnet_peers WHERE id = $2)::int AS n",
        [dead, lostPeer],
      );
      return rows[0]!.n === 0 ? true : undefined;
    }, 5_000, "old rows gone");
    await eventually(async () => {
      const { rows } = await t.db.query<{ src: string }>("SELECT src_id AS src FROM tailnet_tunnels WHERE coordinator_id = $1", [self]);
      return rows.length === 1 ? rows : undefined;
    }, 5_000, "the orphan tunnel gone").then((rows) => assert.equal(rows[0]!.src, keptPeer));
    const { rowCount } = await t.db.query("SELECT 1 FROM tailnet_peers WHERE id = $1", [keptPeer]);
    assert.equal(rowCount, 1, "a peer still ok is kept, however old");
    await r3.close();
  });
});
