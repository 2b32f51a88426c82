import { parseArgs } from "node:util";
import { createLogger } from "../log.js";
import { ReferenceAgent } from "../refagent/reference-agent.js";

const USAGE = `usage: agentgate agent --url URL --token TOKEN [--protocol connect|grpc] [--log-level LEVEL]

Runs the reference agent: connects to agentgate, fetches the manifest, reports startup and
lifecycle (starting, ready), sends stats; Ctrl-C reports shutting_down and off, then exits.
  --url URL        server base URL (AGENTGATE_URL; default http://127.0.0.1:3000)
  --token TOKEN    agent token (AGENTGATE_AGENT_TOKEN)
  --protocol P     connect (default) or grpc, inside the tunnel
  --log-level L    default info
`;

/** `agentgate agent`: the reference agent, until SIGINT/SIGTERM. */
export async function runAgent(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: "string" },
      token: { type: "string" },
      protocol: { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const token = values.token ?? process.env.AGENTGATE_AGENT_TOKEN;
  if (!token) {
    process.stderr.write(`agentgate agent: --token is required\n${USAGE}`);
    return 1;
  }
  const protocol = values.protocol ?? "connect";
  if (protocol !== "connect" && protocol !== "grpc") {
    process.stderr.write(`agentgate agent: --protocol must be connect or grpc\n`);
    return 1;
  }
  const logger = createLogger({ level: values["log-level"] ?? "info" });
  const agent = new ReferenceAgent({ url: values.url ?? process.env.AGENTGATE_URL ?? "http://127.0.0.1:3000", token, protocol, logger });
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
  const started = agent.start();
  const outcome = await Promise.race([started.then(() => "ready" as const), stopped.then(() => "signal" as const)]).catch((err: unknown) => err as Error);
  if (outcome instanceof Error) {
    logger.error({ err: outcome.message }, "agent failed");
    await agent.stop().catch(() => undefined);
    return 1;
  }
  if (outcome === "ready") await stopped;
  logger.info("stopping");
  await agent.stop();
  logger.info("stopped");
  return 0;
}
