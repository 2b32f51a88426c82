import { DialRefusedError } from "../client/index.js";
import { httpUrl, text, tunnelProtocol } from "../config/flag-kinds.js";
import { UsageError } from "../config/usage-error.js";
import { flag } from "../config/flag.js";
import { logFlags } from "../config/server-flags.js";
import { createLogger } from "../log.js";
import { ReferenceAgent } from "../refagent/reference-agent.js";
import { defineCommand, ExitCodeError } from "./command-spec.js";

/** Exit code when the server refused the agent for good: a bad token, or its build was superseded. */
export const EXIT_REFUSED = 3;

/** `agentgate agent`: the reference agent, until SIGINT/SIGTERM or the server refuses it for good. */
export const agentCommand = defineCommand({
  name: "agent",
  summary: "run the reference agent against a server",
  description: `Runs the reference agent: connects to agentgate, fetches the manifest, reports startup and lifecycle (starting, ready), runs start scripts, collects metadata, checks app health and sends stats. Ctrl-C reports shutting_down and off, then exits 0. While the server cannot be reached it keeps dialling with backoff; when the server refuses it for good (an unknown token, or a newer build of its workspace) it exits 3 with the server's reason.`,
  flags: {
    url: flag(httpUrl, { default: "http://127.0.0.1:3000", help: "the server's base URL" }),
    token: flag(text, { placeholder: "TOKEN", env: "AGENTGATE_AGENT_TOKEN", required: true, secret: true, help: "the agent token workspace create printed" }),
    protocol: flag(tunnelProtocol, { default: "connect", help: "the RPC protocol inside the tunnel (the reference agent speaks connect and grpc)" }),
    ...logFlags,
  },
  async run({ values }) {
    const protocol = values.protocol;
    if (protocol === "drpc") throw new UsageError("--protocol drpc: the reference agent speaks connect or grpc");
    const logger = createLogger({ level: values["log-level"], ...(values["log-format"] ? { format: values["log-format"] } : {}) });
    const agent = new ReferenceAgent({ url: values.url, token: values.token, protocol, logger });
    const stopped = new Promise<void>((resolve) => {
      const stop = () => {
        process.removeListener("SIGINT", stop);
        process.removeListener("SIGTERM", stop);
        process.once("SIGINT", () => process.exit(1));
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    const refused = agent.refused.then((err) => ({ refused: err }));
    const started = agent.start().then(() => "ready" as const, (err: unknown) => ({ failed: err as Error }));
    let outcome = await Promise.race([started, refused, stopped.then(() => "signal" as const)]);
    if (outcome === "ready") outcome = await Promise.race([refused, stopped.then(() => "signal" as const)]);
    if (typeof outcome === "object") {
      await agent.stop().catch(() => undefined);
      const err = "refused" in outcome ? outcome.refused : outcome.failed;
      if (err instanceof DialRefusedError && err.final) throw new ExitCodeError(err.message, EXIT_REFUSED);
      throw err;
    }
    logger.info("stopping");
    await agent.stop();
    logger.info("stopped");
  },
});
