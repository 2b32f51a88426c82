import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Lifecycle_State, StatsSchema, type Manifest } from "../../gen/coder/agent/v2/agent_pb.js";
import { connectAgent, type AgentConnection, type ConnectAgentOptions, type RedialInfo } from "../client/index.js";
import type { Logger } from "../log.js";
import { watchAppHealth } from "./app-health.js";
import { collectMetadata } from "./metadata-collector.js";
import { runStartScripts } from "./script-runner.js";

/** The version this agent reports in UpdateStartup (Go semver, with the leading "v"). */
export const REFERENCE_AGENT_VERSION = "v0.1.0";
/** Stats interval to use if the server's answer is zero. */
const FALLBACK_STATS_INTERVAL_MS = 30_000;
/** Failed dials in a row are reported at the first and every this many, the rest at debug: a server down for an hour is 360 dials. */
const DIAL_REPORT_EVERY = 5;

export interface ReferenceAgentOptions extends ConnectAgentOptions {
  logger: Logger;
}

/**
 * A small agent on the SDK, to see agentgate work end to end: it connects, fetches its
 * manifest, reports startup, runs the start scripts (their output streamed as logs), reports
 * lifecycle (starting → ready, or start_error when a script failed), collects the manifest's
 * metadata, checks app health, and sends stats at the interval the server asks for. `stop()`
 * reports shutting_down → off and disconnects.
 */
export class ReferenceAgent {
  private readonly conn: AgentConnection;
  private readonly stopping = new AbortController();
  private statsLoop: Promise<void> | undefined;
  manifest: Manifest | undefined;
  /**
   * Resolves with the server's reason once it refused this agent for good (a bad token, or a build
   * superseded by a newer one): the agent has stopped working and should exit.
   */
  readonly refused: Promise<Error>;

  constructor(private readonly options: ReferenceAgentOptions) {
    this.conn = connectAgent(options);
    const { logger } = options;
    let connected = false;
    this.conn.on("connected", () => {
      connected = true;
      logger.info("connected");
    });
    this.conn.on("disconnected", (err: Error, next: RedialInfo) => {
      const fields = { err: err.message, attempts: next.attempt, retry_in_ms: next.retryInMs };
      if (connected) {
        connected = false;
        logger.warn(fields, "disconnected; dialling again");
      } else if (next.attempt === 1 || next.attempt % DIAL_REPORT_EVERY === 0) {
        logger.warn(fields, `cannot reach the server (${next.attempt} failed dial${next.attempt === 1 ? "" : "s"}); next dial in ${next.retryInMs} ms`);
      } else {
        logger.debug(fields, "dial failed");
      }
    });
    this.refused = new Promise((resolve) => {
      this.conn.once("fatal", (err: Error) => {
        logger.error({ err: err.message }, "the server refused this agent");
        // Nothing can be reported any more: stop the loops instead of failing every interval.
        this.stopping.abort();
        resolve(err);
      });
    });
  }

  /** Connects and runs the startup sequence; resolves once the agent reported ready. */
  async start(): Promise<void> {
    const { logger } = this.options;
    const { agent } = this.conn;
    await this.conn.ready(this.stopping.signal);
    await this.reportLifecycle(Lifecycle_State.STARTING);
    this.manifest = await agent.getManifest({});
    logger.info(
      { agent: this.manifest.agentName, workspace: this.manifest.workspaceName, owner: this.manifest.ownerUsername, apps: this.manifest.apps.length, scripts: this.manifest.scripts.length },
      "manifest received",
    );
    await agent.updateStartup({ startup: { version: REFERENCE_AGENT_VERSION, expandedDirectory: this.manifest.directory || process.cwd(), subsystems: [] } });
    logger.info({ version: REFERENCE_AGENT_VERSION }, "startup reported");
    const signal = this.stopping.signal;
    collectMetadata(agent, this.manifest.metadata, logger, signal);
    watchAppHealth(agent, this.manifest.apps, logger, signal);
    const scriptsOk = await runStartScripts(agent, this.manifest.scripts, logger, signal);
    await this.reportLifecycle(scriptsOk ? Lifecycle_State.READY : Lifecycle_State.START_ERROR);
    this.statsLoop = this.sendStats();
  }

  private async reportLifecycle(state: Lifecycle_State): Promise<void> {
    await this.conn.agent.updateLifecycle({ lifecycle: { state, changedAt: timestampNow() } });
    this.options.logger.info({ state: Lifecycle_State[state].toLowerCase() }, "lifecycle reported");
  }

  /** Asks for the interval with an empty report (as Coder's agent does), then reports every interval. */
  private async sendStats(): Promise<void> {
    const { logger } = this.options;
    const signal = this.stopping.signal;
    try {
      const first = await this.conn.agent.updateStats({}, { signal });
      const intervalMs = (first.reportInterval ? durationMs(first.reportInterval) : 0) || FALLBACK_STATS_INTERVAL_MS;
      logger.info({ interval_ms: intervalMs }, "stats interval");
      while (!signal.aborted) {
        await sleep(intervalMs, undefined, { signal });
        await this.conn.agent.updateStats({ stats: create(StatsSchema, { connectionCount: 0n, connectionMedianLatencyMs: -1 }) }, { signal });
        logger.debug("stats sent");
      }
    } catch (err) {
      if (!signal.aborted) logger.warn({ err: (err as Error).message }, "stats loop stopped");
    }
  }

  /** Reports shutting_down → off, then disconnects. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.statsLoop;
    try {
      if (this.conn.connected) {
        await this.reportLifecycle(Lifecycle_State.SHUTTING_DOWN);
        await this.reportLifecycle(Lifecycle_State.OFF);
      }
    } finally {
      await this.conn.close();
    }
  }
}
