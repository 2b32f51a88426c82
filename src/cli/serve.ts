import { parseArgs } from "node:util";
import { createServer } from "node:http";

/** `agentgate serve`: for now only the health route; the agent endpoint arrives with its own issue. */
export async function runServe(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { listen: { type: "string", default: process.env.AGENTGATE_LISTEN ?? "127.0.0.1:3000" } },
  });
  const { host, port } = splitHostPort(values.listen!);
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "Route not found." }));
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  process.stdout.write(`agentgate listening on http://${values.listen}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  return 0;
}

function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--listen: want host:port, got "${listen}"`);
  }
  return { host, port };
}
