/**
 * A `serve --workers N` process for benchmarks: started on a PostgreSQL database with the
 * open-files limit raised as far as the shell allows, its log read for the listening URL, the
 * worker pids, warnings and worker exits; stopped with SIGTERM (a graceful drain).
 */
import { execFile, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { createInterface } from "node:readline";

const SOURCE_MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
/** The build `npm run build` makes: what a deployment runs, and quicker to start than the sources through tsx. */
const BUILT_MAIN = new URL("../../dist/src/cli/main.js", import.meta.url).pathname;
/** Clock ticks per second of /proc/<pid>/stat. */
const USER_HZ = 100;

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(file, args, (err, stdout) => (err ? reject(err) : resolve(stdout))));
}

export interface ServeProcess {
  url: string;
  pids: Set<number>;
  /** Log lines at warn and above, and workers that died: what explains a bad run. */
  trouble: { warnings: number; workerExits: number; lastWarning: string };
  stop(): Promise<void>;
  /** CPU seconds and RSS bytes of the primary and its workers together. */
  usage(): Promise<{ cpu: number; rss: number }>;
}

/**
 * Builds dist/ (`npm run build`). A benchmark measures the built server, as a deployment runs it:
 * the sources through tsx carry esbuild's keepNames wrapper on every function, a call each time a
 * closure is made and a property store on each (about 4 KB per connected agent, and ~2 % of the
 * CPU of an RPC).
 */
export function buildDist(): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    spawn("npm", ["run", "--silent", "build"], { stdio: "inherit" }).once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`npm run build exited with ${code}`)))),
  );
}

/** `serve --workers N` on the database; SERVER_LOG=file keeps its log. */

export async function startServe(o: {
  workers: number;
  databaseUrl: string;
  adminToken: string;
  listen?: string;
  nodeArgs?: string[];
  serveArgs?: string[];
  /** Run dist/ (build it first: {@link buildDist}) rather than the sources through tsx. */
  built?: boolean;
}): Promise<ServeProcess> {
  const entry = o.built ? [BUILT_MAIN] : ["--import", "tsx", SOURCE_MAIN];
  const serve = spawn(
    "sh",
    ["-c", `ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`, process.execPath, ...(o.nodeArgs ?? []), ...entry, "serve", "--workers", String(o.workers), "--listen", o.listen ?? "127.0.0.1:0", "--database-url", o.databaseUrl, "--admin-token", o.adminToken, "--log-format", "json", "--log-level", "info", ...(o.serveArgs ?? [])],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, AGENTGATE_LOG_LEVEL: "" } },
  );
  const pids = new Set<number>([serve.pid!]);
  const trouble = { warnings: 0, workerExits: 0, lastWarning: "" };
  const exited = new Promise((r) => serve.once("exit", r));
  const listening = await new Promise<{ url: string }>((resolve, reject) => {
    createInterface({ input: serve.stdout! }).on("line", (line) => {
      let entry: { msg?: string; url?: string; worker_pid?: number; level?: string };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.worker_pid !== undefined) pids.add(entry.worker_pid);
      if (entry.level === "warn" || entry.level === "error" || entry.level === "fatal") {
        trouble.warnings++;
        trouble.lastWarning = line.slice(0, 300);
      }
      if (entry.msg === "worker exited") trouble.workerExits++;
      if (entry.msg === "agentgate listening") resolve(entry as { url: string });
    });
    serve.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
  });
  // Drain the log (one line per agent connecting) so the server never blocks on a full pipe;
  // SERVER_LOG=file keeps it (appended: a restart benchmark's two servers share the file).
  if (process.env.SERVER_LOG) serve.stdout!.pipe(createWriteStream(process.env.SERVER_LOG, { flags: "a" }));
  else serve.stdout!.resume();
  for (const child of (await run("pgrep", ["-P", String(serve.pid)]).catch(() => "")).split("\n").filter(Boolean)) pids.add(Number(child));
  return {
    url: listening.url,
    pids,
    trouble,
    async stop() {
      serve.kill("SIGTERM");
      await exited;
    },
    async usage() {
      let cpu = 0;
      let rss = 0;
      for (const pid of pids) {
        const u = await procUsage(pid);
        cpu += u.cpu;
        rss += u.rss;
      }
      return { cpu, rss };
    },
  };
}


/** CPU seconds and RSS bytes of a process, from /proc. */
export async function procUsage(pid: number): Promise<{ cpu: number; rss: number }> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpu: (Number(f[11]) + Number(f[12])) / USER_HZ, rss: rssKb * 1024 };
  } catch {
    return { cpu: 0, rss: 0 };
  }
}


/**
 * A port free now on 127.0.0.1, for a server and the one that replaces it to listen on in turn.
 * It lies below the kernel's ephemeral range: while no server listens, thousands of agents
 * redialing 127.0.0.1:P from ephemeral ports can connect one of them to itself (TCP's
 * simultaneous open), and that socket then holds P and the new server's bind fails.
 */
export async function freePort(): Promise<number> {
  const range = await readFile("/proc/sys/net/ipv4/ip_local_port_range", "utf8").catch(() => "32768 60999");
  const firstEphemeral = Number(range.trim().split(/\s+/)[0]) || 32768;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * Math.max(1, firstEphemeral - 20_000));
    const probe = createServer();
    const ok = await new Promise<boolean>((r) => probe.once("error", () => r(false)).listen(port, "127.0.0.1", () => r(true)));
    if (ok) {
      await new Promise((r) => probe.close(r));
      return port;
    }
  }
  throw new Error("no free port below the ephemeral range");
}
