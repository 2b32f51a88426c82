import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { runCli, spawnCli } from "../support/cli.js";
import { closedPort } from "../support/closed-port.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

describe("serve's start: what it logs and what it leaves behind", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentgate-serve-logs-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("on a fresh PGlite folder: a progress line before the first start's seconds, the admin token's path, levels as words", async () => {
    const dataDir = join(dir, "fresh");
    const serve = spawnCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir]);
    await serve.waitForLine((l) => l.msg === "agentgate listening");
    serve.child.kill("SIGTERM");
    assert.equal(await serve.exited, 0);
    const msgs = serve.lines.map((l) => l.msg);
    assert.equal(msgs[0], `initialising the embedded database in ${dataDir}, first start takes a few seconds`);
    assert.ok(msgs.indexOf("database ready") > 0);
    const token = serve.lines.find((l) => typeof l.path === "string")!;
    assert.deepEqual([token.msg, token.path], [`admin token written to ${join(dataDir, "admin-token")}`, join(dataDir, "admin-token")]);
    assert.deepEqual([...new Set(serve.lines.map((l) => l.level))], ["info"]);
  });

  test("on a PGlite folder that has a database: an opening line", async () => {
    const dataDir = join(dir, "fresh");
    const serve = spawnCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--admin-token", "given"]);
    await serve.waitForLine((l) => l.msg === "agentgate listening");
    serve.child.kill("SIGTERM");
    assert.equal(await serve.exited, 0);
    assert.equal(serve.lines[0]!.msg, `opening the embedded database in ${dataDir}`);
    assert.ok(serve.lines.some((l) => l.msg === "admin token from the command line"));
  });

  describe("on PostgreSQL", { skip: process.env.TEST_DATABASE_URL ? false : "TEST_DATABASE_URL is not set" }, () => {
    let tdb: TestDatabase;
    before(async () => {
      tdb = await createTestDatabase("pg");
    });
    after(async () => {
      await tdb.destroy();
    });

    test("without --data-dir, nothing goes into ./.agentgate: the generated token waits in a private temporary folder, removed at exit", async () => {
      const cwd = await mkdtemp(join(dir, "cwd-"));
      const serve = spawnCli(["serve", "--listen", "127.0.0.1:0", ...tdb.cliArgs], {}, { cwd });
      await serve.waitForLine((l) => l.msg === "agentgate listening");
      assert.equal(existsSync(join(cwd, ".agentgate")), false);
      const path = String(serve.lines.find((l) => typeof l.path === "string")!.path);
      assert.equal(dirname(dirname(path)), tmpdir());
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal((await stat(dirname(path))).mode & 0o777, 0o700);
      // A plain status beside it is not led to this server, nor does it make a database.
      const status = await runCli(["status"], {}, { cwd });
      assert.equal(status.code, 1);
      assert.match(status.stderr, /^agentgate status: no database: no server runs on \.\/\.agentgate/);
      serve.child.kill("SIGTERM");
      assert.equal(await serve.exited, 0);
      assert.equal(existsSync(dirname(path)), false);
      assert.equal(existsSync(join(cwd, ".agentgate")), false);
    });

    test("with --data-dir, server.json and admin-token go there", async () => {
      const stateDir = join(dir, "state");
      const serve = spawnCli(["serve", "--listen", "127.0.0.1:0", ...tdb.cliArgs, "--data-dir", stateDir]);
      await serve.waitForLine((l) => l.msg === "agentgate listening");
      assert.equal(existsSync(join(stateDir, "server.json")), true);
      assert.equal(existsSync(join(stateDir, "admin-token")), true);
      serve.child.kill("SIGTERM");
      assert.equal(await serve.exited, 0);
    });
  });
});

test("--log-format pretty overrides the guess from a stdout that is not a terminal", { timeout: 60_000 }, async () => {
  const port = await closedPort();
  const child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), new URL("../../src/cli/main.ts", import.meta.url).pathname,
    "agent", "--url", `http://127.0.0.1:${port}`, "--token", randomUUID(), "--log-format", "pretty"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  await new Promise<void>((resolve) => {
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("cannot reach the server")) resolve();
    });
  });
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("close", resolve));
  const line = out.split("\n").find((l) => l.includes("cannot reach the server"))!;
  assert.throws(() => JSON.parse(line));
  assert.match(line, /WARN/);
});
