/**
 * HAProxy from Debian in front of several servers, started by a test from a generated config:
 * HTTP mode with WebSockets passed through (`timeout tunnel`), round robin, /healthz checks, and
 * redispatch so a dial to a dead server goes to a live one.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Why the HAProxy tests are skipped here, or false when they run. */
export const SKIP_HAPROXY: string | false =
  spawnSync("haproxy", ["-v"]).status === 0 ? false : "no haproxy binary (Debian: apt-get install haproxy; .ci/run installs it)";

export interface Balancer {
  url: string;
  close(): Promise<void>;
}

/** A port free right now on 127.0.0.1, for a program that can't be told port 0. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts HAProxy balancing `backends` (URLs like http://127.0.0.1:1234); resolves once it answers /healthz. */
export async function startBalancer(backends: string[]): Promise<Balancer> {
  const dir = await mkdtemp(join(tmpdir(), "agentgate-haproxy-"));
  const port = await freePort();
  const servers = backends.map((b, i) => `  server r${i + 1} ${new URL(b).host} check inter 250ms fall 2 rise 1`);
  const config = [
    "global",
    "  maxconn 2000",
    "defaults",
    "  mode http",
    "  timeout connect 2s",
    "  timeout client 60s",
    "  timeout server 60s",
    // A WebSocket is a tunnel once upgraded: idle agents must not be cut.
    "  timeout tunnel 1h",
    "  retries 3",
    "  option redispatch",
    "frontend agents",
    `  bind 127.0.0.1:${port}`,
    "  default_backend replicas",
    "backend replicas",
    "  balance roundrobin",
    "  option httpchk GET /healthz",
    ...servers,
    "",
  ].join("\n");
  const file = join(dir, "haproxy.cfg");
  await writeFile(file, config);
  const child: ChildProcess = spawn("haproxy", ["-db", "-f", file], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`);
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`haproxy did not answer within 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async close() {
      child.kill("SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
