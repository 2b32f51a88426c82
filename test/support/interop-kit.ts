/**
 * The interop kit: clients written outside this codebase (a Go agent probe on hashicorp/yamux and
 * grpc-go, buf curl, Python grpcio). `.ci/run` builds it and sets AGENTGATE_INTEROP_KIT; without
 * that, the kit is built once into node_modules/.cache from ../shared/interop (Debian packages,
 * about a minute, needs root), so `npm test` on a fresh machine runs these tests too.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { isProcessAlive } from "../../src/process-alive.js";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..", "..");
/** apt-get and the Go build take about a minute; allow for a slow mirror. */
const BUILD_WAIT_MS = 5 * 60_000;

export interface InteropKit {
  /** The Go probe: websocket → hashicorp yamux → grpc-go. */
  agentprobe: string;
  /** buf, from this project's own dev dependencies. */
  buf: string;
  /** The kit's sources (pyprobe.py lives there). */
  src: string;
  /** A descriptor set of proto/ with imports, for the probes. */
  descriptorSet: string;
  /** The kit's own test schema (`interop.echo.v1.EchoService`), which agentgate does not serve. */
  echoDescriptorSet: string;
  cleanup(): Promise<void>;
}

function kitSource(): string {
  return process.env.AGENTGATE_INTEROP_SRC ?? resolve(ROOT, "..", "shared", "interop");
}

/**
 * Why the kit's tests are skipped on this machine, or false when they run: AGENTGATE_SKIP_INTEROP=1,
 * or no kit given, none built yet and no way to build one (its Debian packages need root and apt-get).
 * A skipped suite prints this one line as its reason.
 */
export const SKIP_INTEROP: string | false = interopSkipReason();

function interopSkipReason(): string | false {
  if (process.env.AGENTGATE_SKIP_INTEROP === "1") return "AGENTGATE_SKIP_INTEROP=1";
  if (process.env.AGENTGATE_INTEROP_KIT) return false;
  if (existsSync(join(cacheDir(), "bin", "agentprobe"))) return false;
  if (!existsSync(join(kitSource(), "build.sh"))) {
    return `no interop kit: ${join(kitSource(), "build.sh")} not found (set AGENTGATE_INTEROP_SRC to the kit's sources, or AGENTGATE_INTEROP_KIT to a built kit)`;
  }
  if (debianPackagesPresent()) return false;
  if (spawnSync("apt-get", ["--version"]).status !== 0) return "no interop kit: building it needs Debian's apt-get (or set AGENTGATE_INTEROP_KIT to a built kit)";
  if (process.getuid?.() !== 0) return "no interop kit: installing its Debian packages needs root (or set AGENTGATE_INTEROP_KIT to a built kit)";
  return false;
}

/** Where `npm test` builds the kit when none is given. */
function cacheDir(): string {
  return join(ROOT, "node_modules", ".cache", "agentgate-interop-kit");
}

/** The kit's folder: AGENTGATE_INTEROP_KIT, else a cache folder built on first use. */
export async function interopKitDir(): Promise<string> {
  const given = process.env.AGENTGATE_INTEROP_KIT;
  if (given) return given;
  const dir = cacheDir();
  const lock = `${dir}.lock`;
  // The lock lives beside the kit; on a fresh clone node_modules/.cache does not exist yet.
  await mkdir(dirname(lock), { recursive: true });
  // Test files run in parallel: one builds (apt-get takes dpkg's lock), the others wait for it.
  const deadline = Date.now() + BUILD_WAIT_MS;
  while (!existsSync(join(dir, "bin", "agentprobe"))) {
    try {
      await mkdir(lock, { recursive: false });
      await writeFile(join(lock, "pid"), String(process.pid));
    } catch (err) {
      // Only an existing lock means another builder; anything else is a real failure.
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (lockHolderGone(lock)) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`waited ${BUILD_WAIT_MS} ms for another process to build the interop kit (${lock})`);
      await new Promise((r) => setTimeout(r, 1_000));
      continue;
    }
    try {
      await mkdir(dir, { recursive: true });
      const built = spawnSync("bash", [join(kitSource(), "build.sh"), dir], {
        env: { ...process.env, ...(debianPackagesPresent() ? { SKIP_APT: "1" } : {}) },
        encoding: "utf8",
      });
      if (built.status !== 0) throw new Error(`building the interop kit failed:\n${built.stdout}\n${built.stderr}`);
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }
  return dir;
}

/** Go, protoc and the Go libraries the kit builds from are installed: apt-get can be skipped. */
function debianPackagesPresent(): boolean {
  const gocode = "/usr/share/gocode/src";
  return (
    spawnSync("go", ["version"]).status === 0 &&
    spawnSync("protoc", ["--version"]).status === 0 &&
    ["github.com/hashicorp/yamux", "github.com/gorilla/websocket", "google.golang.org/grpc", "google.golang.org/protobuf"].every((lib) => existsSync(join(gocode, lib)))
  );
}

/** A lock left by a builder that died (killed by a timeout, say) must not block the next run. */
function lockHolderGone(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, "pid"), "utf8"));
  } catch {
    // Just created, pid not written yet: the holder is alive.
    return false;
  }
  return !isProcessAlive(pid);
}

/** Finds or builds the kit. Throws with the reason when it can't be had. */
export async function interopKit(): Promise<InteropKit> {
  const dir = await interopKitDir();
  const agentprobe = join(dir, "bin", "agentprobe");
  if (!existsSync(agentprobe)) throw new Error(`no agentprobe in ${dir}: run ${join(kitSource(), "build.sh")} ${dir}`);
  const work = await mkdtemp(join(tmpdir(), "agentgate-interop-"));
  const descriptorSet = join(work, "agent.binpb");
  await run("npx", ["--no-install", "buf", "build", "-o", descriptorSet], { cwd: ROOT });
  return {
    agentprobe,
    buf: join(ROOT, "node_modules", ".bin", "buf"),
    src: kitSource(),
    descriptorSet,
    echoDescriptorSet: join(dir, "echo.binpb"),
    cleanup: () => rm(work, { recursive: true, force: true }),
  };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a kit binary to completion; never throws on a non-zero exit (tests assert the code). */
export async function runTool(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  try {
    const { stdout, stderr } = await run(file, args, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}
