import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { interopKitDir, SKIP_INTEROP } from "../support/interop-kit.js";
import { Session, type Stream } from "../../src/yamux/index.js";
import { echoStreams, readAll } from "./helpers.js";

/**
 * Interop with hashicorp/yamux, the implementation Go agents use. The Go peer is built from
 * test/yamux/go in GOPATH mode against Debian's packages (as ../shared/interop/build.sh does):
 * apt-get install golang-go golang-github-hashicorp-yamux-dev. Set AGENTGATE_SKIP_INTEROP=1
 * to skip where Go cannot be installed; otherwise a missing Go fails the suite.
 */
const skip = SKIP_INTEROP;
const GO_SOURCES = fileURLToPath(new URL("./go", import.meta.url));
const STREAMS = 8;
/** Four times the 256 KiB window, so window updates flow both ways. */
const BYTES = 1024 * 1024;

let workDir = "";
let peerBinary = "";

async function buildPeer(): Promise<void> {
  // The kit's build installs Go and Debian's hashicorp/yamux when they are missing.
  await interopKitDir();
  workDir = mkdtempSync(join(tmpdir(), "agentgate-yamuxpeer-"));
  peerBinary = join(workDir, "yamuxpeer");
  const env = {
    ...process.env,
    GO111MODULE: "off",
    GOPATH: `${join(workDir, "gopath")}:${GO_SOURCES}:/usr/share/gocode`,
    GOPROXY: "off",
    GOFLAGS: "",
    GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "agentgate-gocache"),
  };
  try {
    await promisify(execFile)("go", ["build", "-o", peerBinary, "yamuxpeer"], { env });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new Error("`go` not found: install golang-go and golang-github-hashicorp-yamux-dev (or set AGENTGATE_SKIP_INTEROP=1)");
    }
    throw new Error(`building the Go yamux peer failed (is golang-github-hashicorp-yamux-dev installed?):\n${e.stderr ?? e.message}`);
  }
}

/** Runs the Go peer; resolves with its JSON report, rejects with its stderr on failure. */
function runPeer(child: ChildProcess): Promise<Record<string, number>> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`yamuxpeer exited with ${code}: ${stderr}`));
      resolve(JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number>);
    });
  });
}

function pattern(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (Math.imul(seed, 2654435761) | 1) >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[i] = x & 0xff;
  }
  return out;
}

describe("interop with hashicorp/yamux (Go)", { skip }, () => {
  before(buildPeer, { timeout: 120_000 });
  after(() => workDir && rmSync(workDir, { recursive: true, force: true }));

  it("a Go client opens 8 streams to a Node server session: 1 MiB each echoed with half-close, pings both ways", async () => {
    let session: Session | undefined;
    let pingToGo: Promise<number> | undefined;
    const server = net.createServer((socket) => {
      session = new Session(socket, { role: "server" });
      echoStreams(session);
      session.once("stream", () => (pingToGo = session!.ping()));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as net.AddressInfo;
    const report = await runPeer(spawn(peerBinary, ["client", `127.0.0.1:${port}`, String(STREAMS), String(BYTES)]));
    assert.equal(report.streams, STREAMS);
    assert.ok(report.pingMs! >= 0);
    assert.ok((await pingToGo!) >= 0, "Go answered our ping");
    if (!session!.closed) await once(session!, "close");
    assert.equal(session!.counters.streamsAccepted, STREAMS);
    assert.equal(session!.counters.pingsReceived, 1);
    assert.equal(session!.counters.bytesIn, STREAMS * BYTES);
    assert.equal(session!.streamCount, 0);
    server.close();
  });

  it("a Node client session opens 8 streams to a Go server: 1 MiB each echoed with half-close, then closes cleanly", async () => {
    const child = spawn(peerBinary, ["server", "127.0.0.1:0"]);
    const result = runPeer(child);
    const [address] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
    const [host, port] = address.split(":");
    const socket = net.connect(Number(port), host);
    await once(socket, "connect");
    const session = new Session(socket, { role: "client" });
    assert.ok((await session.ping()) >= 0);
    const echoes = Array.from({ length: STREAMS }, async (_, i) => {
      const stream: Stream = session.open();
      const data = pattern(i, BYTES);
      const back = readAll(stream);
      stream.end(data);
      assert.ok((await back).equals(data), `stream ${stream.id} echoed intact`);
    });
    await Promise.all(echoes);
    assert.equal(session.streamCount, 0);
    await session.close();
    const report = await result;
    assert.deepEqual(report, { echoed: STREAMS, bytes: STREAMS * BYTES });
  });
});
