/**
 * What a stock Coder agent does on its tunnel, over DRPC with one fresh yamux stream per RPC:
 * the routines it starts at once after connecting, each repeating until the session's time is
 * up. A Coder agent drops its whole connection when any of them fails, so a failure of any
 * routine is recorded; Unimplemented is accepted only where Coder's agent takes it as "feature
 * absent" (the context pusher).
 *
 *   const report = await runStockAgentSession(tunnel.session, { durationMs: 30_000, agentId });
 *   assert.deepEqual(report.failures, []);
 */
import { setTimeout as sleep } from "node:timers/promises";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Agent, Connection_Action, Lifecycle_State, Timing_Stage, Timing_Status, type Manifest } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { randomUUID } from "node:crypto";
import { uuidToBytes } from "../../src/agentapi/uuid-bytes.js";
import { createDrpcClient, type DrpcClient } from "../../src/rpc/index.js";
import { agentAddresses } from "../../src/tailnet/agent-addresses.js";
import type { Session } from "../../src/yamux/index.js";

export interface StockSessionOptions {
  /** How long the routines run. */
  durationMs: number;
  /** The agent's id: its Coordinate node carries the addresses derived from it. */
  agentId: string;
  /** Pause between two rounds of a repeating routine. Default 100 ms. */
  intervalMs?: number;
}

export interface StockSessionReport {
  /** Calls that succeeded, by routine. */
  calls: Record<string, number>;
  /** The first failure of each routine that failed, as "routine: code message". */
  failures: string[];
}

/** How long Coordinate waits for the server to hang up after its Disconnect. */
const HANG_UP_WAIT_MS = 10_000;

/** The routines of a Coder agent's session, each named as the report names it. */
const ROUTINES = [
  "banners",
  "logs",
  "lifecycle",
  "metadata",
  "resources monitoring",
  "connection reports",
  "manifest, startup, scripts",
  "app health",
  "coordinate",
  "derp maps",
  "stats",
  "context",
] as const;
type Routine = (typeof ROUTINES)[number];

/** Runs every routine of a Coder agent's session at once for `durationMs`; resolves with what happened. */
export async function runStockAgentSession(session: Session, options: StockSessionOptions): Promise<StockSessionReport> {
  const agent = createDrpcClient(Agent, session);
  const tailnet = createDrpcClient(Tailnet, session);
  const interval = options.intervalMs ?? 100;
  const stop = AbortSignal.timeout(options.durationMs);
  const calls: Record<string, number> = Object.fromEntries(ROUTINES.map((r) => [r, 0]));
  const failures: string[] = [];
  const counted = async <T>(routine: Routine, call: Promise<T>): Promise<T> => {
    const result = await call;
    calls[routine]!++;
    return result;
  };
  /** Repeats `round` until the time is up; stops the routine at its first failure. */
  const repeat = async (routine: Routine, round: () => Promise<unknown>): Promise<void> => {
    while (!stop.aborted) {
      await round();
      await sleep(interval, undefined, { signal: stop }).catch(() => undefined);
    }
  };
  const run = (routine: Routine, body: () => Promise<void>): Promise<void> =>
    body().catch((err: unknown) => {
      const e = ConnectError.from(err);
      failures.push(`${routine}: ${Code[e.code]} ${e.rawMessage}`);
    });

  // The manifest is read first by the routines that need its ids, as the agent's do.
  const manifest = await counted("manifest, startup, scripts", agent.getManifest({}));
  await Promise.all([
    run("banners", () => repeat("banners", () => counted("banners", agent.getAnnouncementBanners({})))),
    run("logs", () => repeat("logs", () => counted("logs", agent.batchCreateLogs({ logSourceId: logSourceOf(manifest), logs: [{ createdAt: timestampNow(), output: "agent log line", level: 2 }] })))),
    run("lifecycle", async () => {
      for (const state of [Lifecycle_State.STARTING, Lifecycle_State.READY]) await counted("lifecycle", agent.updateLifecycle({ lifecycle: { state, changedAt: timestampNow() } }));
    }),
    run("metadata", () =>
      repeat("metadata", () =>
        counted("metadata", agent.batchUpdateMetadata({ metadata: manifest.metadata.map((m) => ({ key: m.key, result: { collectedAt: timestampNow(), age: 0n, value: "1" } })) })),
      ),
    ),
    run("resources monitoring", async () => {
      const config = await counted("resources monitoring", agent.getResourcesMonitoringConfiguration({}));
      const volumes = config.volumes.filter((v) => v.enabled).map((v) => ({ volume: v.path, used: 10n, total: 100n }));
      await repeat("resources monitoring", () =>
        counted(
          "resources monitoring",
          agent.pushResourcesMonitoringUsage({
            datapoints: [{ collectedAt: timestampNow(), memory: config.memory?.enabled ? { used: 1n, total: 10n } : undefined, volumes }],
          }),
        ),
      );
    }),
    run("connection reports", () =>
      repeat("connection reports", async () => {
        const id = uuidToBytes(randomUUID());
        for (const action of [Connection_Action.CONNECT, Connection_Action.DISCONNECT]) {
          await counted("connection reports", agent.reportConnection({ connection: { id, action, appName: "ssh", timestamp: timestampNow(), ip: "127.0.0.1" } }));
        }
      }),
    ),
    run("manifest, startup, scripts", async () => {
      await counted("manifest, startup, scripts", agent.updateStartup({ startup: { version: "v2.24.0", expandedDirectory: manifest.directory || "/home/coder", subsystems: [] } }));
      for (const script of manifest.scripts.filter((s) => s.runOnStart)) {
        const start = timestampNow();
        await counted("manifest, startup, scripts", agent.batchCreateLogs({ logSourceId: script.logSourceId, logs: [{ createdAt: start, output: "script output", level: 2 }] }));
        await counted(
          "manifest, startup, scripts",
          agent.scriptCompleted({ timing: { scriptId: script.id, start, end: timestampNow(), exitCode: 0, stage: Timing_Stage.START, status: Timing_Status.OK } }),
        );
      }
    }),
    run("app health", () =>
      repeat("app health", () =>
        counted("app health", agent.batchUpdateAppHealths({ updates: manifest.apps.filter((a) => a.healthcheck !== undefined).map((a) => ({ id: a.id, health: 2 })) })),
      ),
    ),
    run("coordinate", () => coordinate(tailnet, options.agentId, stop, interval, () => calls.coordinate!++)),
    run("derp maps", async () => {
      // The agent keeps the stream for the session, reading every map the server sends.
      const maps = tailnet.streamDERPMaps({})[Symbol.asyncIterator]();
      const first = await maps.next();
      if (first.done === true) throw new Error("StreamDERPMaps ended before its first map");
      calls["derp maps"]!++;
      await new Promise((resolve) => stop.addEventListener("abort", resolve, { once: true }));
      await maps.return?.();
    }),
    run("stats", async () => {
      await counted("stats", agent.updateStats({}));
      await repeat("stats", () => counted("stats", agent.updateStats({ stats: { connectionCount: 0n, connectionMedianLatencyMs: -1, sessionCounts: { ssh: 1n } } })));
    }),
    run("context", () =>
      repeat("context", async () => {
        try {
          await counted("context", agent.pushContextState({ version: 1n, initial: true }));
        } catch (err) {
          if (ConnectError.from(err).code !== Code.Unimplemented) throw err;
          calls.context!++;
        }
      }),
    ),
  ]);
  return { calls, failures };
}

/**
 * The agent's Coordinate: UpdateSelf with its node, again each round, then Disconnect when the
 * session ends, after which the server must hang up (the stream ends with no error).
 */
async function coordinate(tailnet: DrpcClient<typeof Tailnet>, agentId: string, stop: AbortSignal, interval: number, onCall: () => void): Promise<void> {
  const call = tailnet.coordinate();
  const node = (preferredDerp: number) => ({ id: 1n, preferredDerp, key: new Uint8Array(32), disco: "discokey:00", addresses: nodeAddresses(agentId), allowedIps: nodeAddresses(agentId) });
  let round = 0;
  // Responses (peer updates) are read all along, as the agent does; an error ends the loop.
  const responses = (async () => {
    for await (const _ of call) {
      // Nothing to do with peer updates here: no client opened a tunnel to this agent.
    }
  })();
  try {
    while (!stop.aborted) {
      await call.send({ updateSelf: { node: node(++round) } });
      onCall();
      await sleep(interval, undefined, { signal: stop }).catch(() => undefined);
    }
    await call.send({ disconnect: {} });
    onCall();
    // The server hangs up (the responses end) or the routine fails.
    const hungUp = await Promise.race([responses.then(() => true), sleep(HANG_UP_WAIT_MS, false)]);
    if (!hungUp) throw new Error(`the server did not hang up within ${HANG_UP_WAIT_MS} ms of Disconnect`);
  } finally {
    call.close();
  }
}

/** The single-host prefix of the agent's own Tailscale address, as its node lists it. */
export function nodeAddresses(agentId: string): string[] {
  return [`${agentAddresses(agentId)[0]}/128`];
}

function logSourceOf(manifest: Manifest): Uint8Array {
  return manifest.scripts[0]?.logSourceId ?? new Uint8Array(16);
}
