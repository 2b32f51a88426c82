import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { Log_Level } from "../../gen/coder/agent/v2/agent_pb.js";
import type { StatusLine, WorkspaceStatus } from "../../src/cli/status.js";
import { connectAgent, type AgentConnection } from "../../src/client/index.js";
import type { ProvisionResult } from "../../src/provision/provision.js";
import { runCli } from "../support/cli.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
/** The control API's flags and variables cleared, so only the data folder can lead the CLI to the server. */
const NO_CONTROL_ENV = { AGENTGATE_URL: "", AGENTGATE_ADMIN_TOKEN: "" };

/**
 * The README's path on the embedded database, as processes: `serve` holds the PGlite folder, and
 * `workspace create` and `status` on the same folder reach it through the control API.
 */
describe("newcomer path: serve on PGlite, then workspace create and status beside it", () => {
  let tdb: TestDatabase;
  let dir: string;
  let serve: ChildProcess;
  let exited: Promise<number | null>;
  let url: string;
  let created: ProvisionResult;
  let agent: AgentConnection | undefined;

  before(async () => {
    tdb = await createTestDatabase("pglite");
    dir = tdb.options.dataDir!;
    serve = spawn(process.execPath, ["--import", "tsx", MAIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir], {
      env: { ...process.env, ...NO_CONTROL_ENV, DATABASE_URL: "", AGENTGATE_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    exited = new Promise((resolve) => serve.once("exit", (code) => resolve(code)));
    url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: serve.stdout! }).on("line", (line) => {
        const entry = JSON.parse(line) as { msg: string; url: string };
        if (entry.msg === "agentgate listening") resolve(entry.url);
      });
      serve.once("exit", (code) => reject(new Error(`serve exited early with ${code}`)));
    });
  });
  after(async () => {
    await agent?.close();
    if (serve.exitCode === null) serve.kill("SIGKILL");
    await tdb.destroy();
  });

  test("serve writes server.json with its url and pid, and a generated admin-token readable by its owner only", async () => {
    const server = JSON.parse(await readFile(join(dir, "server.json"), "utf8")) as { url: string; pid: number };
    assert.deepEqual(server, { url, pid: serve.pid });
    const token = await stat(join(dir, "admin-token"));
    assert.equal(token.mode & 0o777, 0o600);
  });

  test("workspace create --data-dir goes through the running server and prints the --json result", async () => {
    const r = await runCli(["workspace", "create", "--owner", "alice", "--name", "dev", "--json", "--data-dir", dir], NO_CONTROL_ENV);
    assert.equal(r.code, 0, r.stderr);
    created = JSON.parse(r.stdout) as ProvisionResult;
    assert.deepEqual([created.build_number, created.agents.map((a) => a.name)], [1, ["main"]]);
  });

  test("status --data-dir shows the agent connected while it is", async () => {
    agent = connectAgent({ url, token: created.agents[0]!.token });
    await new Promise((resolve) => agent!.once("connected", resolve));
    const r = await runCli(["status", "--data-dir", dir, "--json"], NO_CONTROL_ENV);
    assert.equal(r.code, 0, r.stderr);
    const lines = JSON.parse(r.stdout) as StatusLine[];
    assert.deepEqual(
      lines.map((l) => [l.workspace, l.agent, l.build_number, l.status]),
      [["alice/dev", "main", 1, "connected"]],
    );
    assert.notEqual(lines[0]!.last_connected_at, null);
  });

  test("status WORKSPACE --data-dir goes through the running server and shows the agent's last log lines", async () => {
    await agent!.agent.batchCreateLogs({ logSourceId: new Uint8Array(16), logs: [{ output: "hello", level: Log_Level.INFO }] });
    const r = await runCli(["status", "alice/dev", "--data-dir", dir, "--json"], NO_CONTROL_ENV);
    assert.equal(r.code, 0, r.stderr);
    const detail = JSON.parse(r.stdout) as WorkspaceStatus;
    assert.deepEqual(
      detail.agents.map((a) => [a.agent, a.status, a.logs.map((l) => [l.source, l.output])]),
      [["main", "connected", [["External", "hello"]]]],
    );
  });

  test("a wrong --admin-token is one line on stderr and exit 1", async () => {
    const r = await runCli(["status", "--url", url, "--admin-token", "wrong"], NO_CONTROL_ENV);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", "agentgate status: invalid admin token\n"]);
  });

  test("SIGTERM: serve exits 0 and removes server.json and admin-token", async () => {
    serve.kill("SIGTERM");
    assert.equal(await exited, 0);
    const missing = async (name: string) => (await stat(join(dir, name)).catch(() => undefined)) === undefined;
    assert.deepEqual([await missing("server.json"), await missing("admin-token")], [true, true]);
  });

  test("with no server running, status --data-dir reads the database itself again", async () => {
    const r = await runCli(["status", "--data-dir", dir, "--json"], NO_CONTROL_ENV);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as StatusLine[]).map((l) => [l.agent, l.status]), [["main", "disconnected"]]);
  });
});
