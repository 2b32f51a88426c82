/**
 * The tailnet coordinator across two replicas on one PostgreSQL: AGENTS agent peers on replica 1,
 * each with one client peer on replica 2 holding a tunnel to it. Two coordinator replicas run in
 * this process, each on its own pool and LISTEN connection (as two `serve` processes would be);
 * the peers call `Coordinator.coordinate` directly, so the figures are the coordinator's and the
 * database's, without the WebSocket/yamux/HTTP/2 transport (bench/tunnel.ts measures that).
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/tailnet.ts
 *
 * Phases, each reported with the statements both replicas sent per node update (counted at the
 * client, and PostgreSQL's own xact_commit for the scratch database):
 *   setup       every peer connects, clients add their tunnel, both sides send a first node;
 *   burst       every agent sends BURST updates at once: updates/s delivered end to end (the
 *               coordinator may coalesce an agent's updates: only the last one must arrive);
 *   paced       RATE updates/s for PACED_SECONDS from random agents: the delay from update_self
 *               on replica 1 to the client on replica 2 receiving it, p50/p99/max;
 *   baseline    the floor under that delay, in the same run: bare NOTIFYs at the same rate from
 *               replica 1's pool to replica 2's LISTEN connection, one statement per 10 ms tick
 *               (as the coordinator batches), and the ratio of the coordinator's delays to it.
 * AGENTS (default 5000), BURST (3), RATE (1000), PACED_SECONDS (10) in the environment.
 */
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import pg from "pg";
import { CoordinateResponse_PeerUpdate_Kind as Kind, NodeSchema, type CoordinateResponse } from "../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidToBytes } from "../src/agentapi/uuid-bytes.js";
import { openDatabase, type Database } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { silentLogger } from "../src/log.js";
import { agentAddresses } from "../src/tailnet/agent-addresses.js";
import { agentCoordinateeAuth, clientCoordinateeAuth } from "../src/tailnet/coordinatee-auth.js";
import { Coordinator } from "../src/tailnet/coordinator.js";
import type { PeerIdentity } from "../src/tailnet/peer-identity.js";
import { RequestQueue } from "../test/support/tailnet-peer.js";
import { countedDatabase, StatementCounter } from "./support/statement-counter.js";

const adminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!adminUrl) {
  process.stderr.write("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL\n");
  process.exit(1);
}
const AGENTS = Number(process.env.AGENTS ?? 5_000);
const BURST = Number(process.env.BURST ?? 3);
const RATE = Number(process.env.RATE ?? 1_000);
const PACED_SECONDS = Number(process.env.PACED_SECONDS ?? 10);
/** Every wait of the bench is bounded: a stuck phase fails the run instead of hanging it. */
const PHASE_TIMEOUT_MS = 180_000;

const name = `agentgate_bench_tailnet_${process.pid}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;

/** One peer: its request queue, and what it heard about its one tunnel peer. */
class BenchPeer {
  readonly requests = new RequestQueue();
  /** The last DERP region heard from the other side, and a callback per delivery. */
  lastDerp = 0;
  onNode: ((derp: number) => void) | undefined;
  private readonly abort = new AbortController();

  constructor(coordinator: Coordinator, readonly identity: PeerIdentity) {
    void this.consume(coordinator.coordinate(identity, this.requests, this.abort.signal));
  }

  update(derp: number): void {
    const addresses = this.identity.kind === "agent" ? [`${agentAddresses(this.identity.id)[0]}/128`] : [];
    this.requests.push({ updateSelf: { node: create(NodeSchema, { preferredDerp: derp, addresses }) } });
  }

  private async consume(stream: AsyncIterable<CoordinateResponse>): Promise<void> {
    for await (const res of stream) {
      for (const u of res.peerUpdates) {
        if (u.kind !== Kind.NODE || u.node === undefined) continue;
        this.lastDerp = u.node.preferredDerp;
        this.onNode?.(u.node.preferredDerp);
      }
    }
  }

  close(): void {
    this.requests.push({ disconnect: {} });
  }
}

/** Resolves when `done()` holds, checked on every delivery; rejects after the phase timeout. */
function until(what: string, done: () => boolean, subscribe: (check: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not reached within ${PHASE_TIMEOUT_MS} ms`)), PHASE_TIMEOUT_MS);
    const check = () => {
      if (!done()) return;
      clearTimeout(timer);
      resolve();
    };
    subscribe(check);
    check();
  });
}

/** PostgreSQL reports a backend's counts at most once a second: wait that out before reading them. */
const STATS_FLUSH_MS = 1_100;

async function xactCommits(): Promise<number> {
  await new Promise((r) => setTimeout(r, STATS_FLUSH_MS));
  await admin.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await admin.query<{ n: string }>("SELECT xact_commit AS n FROM pg_stat_database WHERE datname = $1", [name]);
  return Number(rows[0]!.n);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

const counter = new StatementCounter();
const handles: Database[] = [];
const replicas: Coordinator[] = [];
try {
  const setupDb = await openDatabase({ databaseUrl: url.toString() });
  await migrate(setupDb);
  await setupDb.close();
  for (let i = 0; i < 2; i++) {
    const db = await openDatabase({ databaseUrl: url.toString(), subscriberQueue: 1_000_000 });
    handles.push(db);
    replicas.push(await Coordinator.start({ db: countedDatabase(db, counter), replicaId: randomUUID(), logger: silentLogger() }));
  }
  const [r1, r2] = replicas as [Coordinator, Coordinator];

  const statements = () => Object.values(counter.snapshot().counts).reduce((n, c) => n + c.n, 0);
  let stmt0 = statements();
  let xact0 = await xactCommits();
  const phaseDb = async () => {
    const s = statements();
    const x = await xactCommits();
    const figures = { statements: s - stmt0, xacts: x - xact0 };
    stmt0 = s;
    xact0 = x;
    return figures;
  };

  let checks: (() => void)[] = [];
  const subscribe = (check: () => void) => (checks = [check]);
  const notify = () => checks[0]?.();

  // Setup: agents on replica 1, their clients on replica 2.
  const t0 = performance.now();
  const pairs = Array.from({ length: AGENTS }, () => {
    const agentId = randomUUID();
    const clientId = randomUUID();
    const agent = new BenchPeer(r1, { id: agentId, name: `agent-${agentId.slice(0, 8)}`, kind: "agent", auth: agentCoordinateeAuth(agentId) });
    const client = new BenchPeer(r2, { id: clientId, name: `client-${clientId.slice(0, 8)}`, kind: "client", auth: clientCoordinateeAuth(agentId) });
    return { agent, client, seq: 1 };
  });
  let seen = 0;
  for (const p of pairs) {
    p.client.requests.push({ addTunnel: { id: uuidToBytes(p.agent.identity.id) } });
    p.client.update(2);
    p.agent.update(1);
    let counted = false;
    p.client.onNode = (derp) => {
      if (!counted && derp === 1) {
        counted = true;
        seen++;
        notify();
      }
    };
  }
  await until("setup", () => seen === AGENTS, subscribe);
  const setupMs = performance.now() - t0;
  const setupDb2 = await phaseDb();
  console.log(`setup: ${AGENTS} agents on replica 1, ${AGENTS} clients on replica 2, every client has its agent's node after ${(setupMs / 1000).toFixed(1)} s; ${setupDb2.statements} statements, ${setupDb2.xacts} transactions`);

  // Burst: every agent sends BURST updates at once; the last of each must arrive.
  const target = 1 + BURST;
  let delivered = 0;
  let complete = 0;
  for (const p of pairs) {
    p.client.onNode = (derp) => {
      delivered++;
      if (derp === target) {
        complete++;
        notify();
      }
    };
  }
  const t1 = performance.now();
  for (const p of pairs) for (let s = 2; s <= target; s++) p.agent.update(s);
  await until("burst", () => complete === AGENTS, subscribe);
  const burstMs = performance.now() - t1;
  const sent = AGENTS * BURST;
  const burstDb = await phaseDb();
  console.log(
    `burst: ${sent} update_self sent at once (${BURST} per agent); every last one delivered after ${(burstMs / 1000).toFixed(2)} s: ` +
      `${Math.round(sent / (burstMs / 1000))} updates/s sent and settled, ${delivered} NODE deliveries (${Math.round(delivered / (burstMs / 1000))}/s); ` +
      `${(burstDb.statements / sent).toFixed(3)} statements and ${(burstDb.xacts / sent).toFixed(3)} transactions per update`,
  );

  // Paced: RATE updates/s from random agents; delay from update_self to the client's NODE.
  const delays: number[] = [];
  const pending = new Map<string, number>();
  for (const p of pairs) {
    p.seq = target;
    p.client.onNode = (derp) => {
      const key = `${p.agent.identity.id}:${derp}`;
      const at = pending.get(key);
      if (at === undefined) return;
      pending.delete(key);
      delays.push(performance.now() - at);
      notify();
    };
  }
  const total = RATE * PACED_SECONDS;
  const tickMs = 10;
  let issued = 0;
  const t2 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t2) / 1000) * RATE));
      for (; issued < due; issued++) {
        const p = pairs[Math.floor(Math.random() * pairs.length)]!;
        p.seq++;
        pending.set(`${p.agent.identity.id}:${p.seq}`, performance.now());
        p.agent.update(p.seq);
      }
      if (issued >= total) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });
  // An update superseded by a newer one of the same agent before delivery may never be delivered
  // (only the last must be): wait until each pending one is delivered or overtaken.
  const byAgent = new Map(pairs.map((p) => [p.agent.identity.id, p]));
  const settled = () =>
    [...pending.keys()].every((k) => {
      const [id, seq] = k.split(":") as [string, string];
      return byAgent.get(id)!.client.lastDerp >= Number(seq);
    });
  await until("paced deliveries", settled, subscribe);
  const pacedMs = performance.now() - t2;
  const pacedDb = await phaseDb();
  delays.sort((a, b) => a - b);
  console.log(
    `paced: ${issued} updates at ${RATE}/s over ${(pacedMs / 1000).toFixed(1)} s; delay update_self → peer (${delays.length} measured, ${pending.size} superseded): ` +
      `p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${percentile(delays, 99).toFixed(1)} ms, max ${delays[delays.length - 1]!.toFixed(1)} ms; ` +
      `${(pacedDb.statements / issued).toFixed(3)} statements and ${(pacedDb.xacts / issued).toFixed(3)} transactions per update`,
  );
  const paced = { p50: percentile(delays, 50), p99: percentile(delays, 99) };

  // Baseline: one NOTIFY per update, replica 1's pool to replica 2's listener, same rate.
  const notifyDelays: number[] = [];
  const sentAt = new Map<string, number>();
  const unsubscribe = await handles[1]!.pubsub.subscribe("agentgate_bench_notify", (payload) => {
    const at = sentAt.get(payload.toString("utf8"));
    if (at !== undefined) notifyDelays.push(performance.now() - at);
    notify();
  }, (err) => console.error(`baseline: ${err.message}`));
  const t3 = performance.now();
  let published = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t3) / 1000) * RATE));
      const batch: string[] = [];
      for (; published < due; published++) {
        sentAt.set(String(published), performance.now());
        batch.push(String(published));
      }
      // One statement per tick, as the coordinator batches its writes: the floor is one write and its NOTIFYs.
      if (batch.length > 0) void handles[0]!.query("SELECT pg_notify('agentgate_bench_notify', n) FROM unnest($1::text[]) AS n", [batch]);
      if (published >= total) {
        clearInterval(timer);
        resolve();
      }
    }, tickMs);
  });
  await until("baseline", () => notifyDelays.length >= total, subscribe);
  unsubscribe();
  notifyDelays.sort((a, b) => a - b);
  const floor = { p50: percentile(notifyDelays, 50), p99: percentile(notifyDelays, 99) };
  console.log(
    `baseline: ${total} bare NOTIFYs at ${RATE}/s (one statement per ${tickMs} ms), pool → other LISTEN connection: p50 ${floor.p50.toFixed(1)} ms, p99 ${floor.p99.toFixed(1)} ms; ` +
      `coordinator / baseline: p50 ${(paced.p50 / floor.p50).toFixed(1)}×, p99 ${(paced.p99 / floor.p99).toFixed(1)}×`,
  );

  for (const p of pairs) {
    p.agent.close();
    p.client.close();
  }
  console.log(`counters: replica 1 ${JSON.stringify(r1.counters())}, replica 2 ${JSON.stringify(r2.counters())}`);
} finally {
  await Promise.all(replicas.map((r) => r.close()));
  await Promise.all(handles.map((h) => h.close()));
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
