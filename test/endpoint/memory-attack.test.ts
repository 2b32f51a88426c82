import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { makeWorkspace } from "../support/fixtures.js";
import { eventually, primaryEngine, useTestDatabase } from "../support/agent-server.js";
import { rssOf, tunnelBodies, unauthenticatedBodies } from "../support/attacks.js";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;

/**
 * The memory attacks at a reduced scale against `serve` in a process of its own, its RSS read
 * from /proc: what the attackers send is several times what the server may hold.
 */
describe("memory attacks on a serve process stay within its bounds", () => {
  const t = useTestDatabase();

  test("unauthenticated near-limit bodies and one agent's stalled streams grow RSS by far less than they send", async () => {
    const token = (await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken;
    if (primaryEngine() === "pglite") await t.db.close();
    const child = spawn(
      process.execPath,
      ["--import", "tsx", MAIN, "serve", "--listen", "127.0.0.1:0", "--max-request-bytes-per-agent", "16MiB", ...t.testDb.cliArgs],
      { env: { ...process.env, DATABASE_URL: "", AGENTGATE_LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on("line", (line) => {
          const entry = JSON.parse(line) as { msg: string; url: string };
          if (entry.msg === "agentgate listening") resolve(entry.url);
        });
        child.once("exit", (code) => reject(new Error(`serve exited early with ${code}`)));
      });
      const port = Number(new URL(url).port);
      // Warm up the paths the attacks take, so the baseline includes their code.
      (await unauthenticatedBodies(port, 2, 64 * 1024)).release();
      (await tunnelBodies(url, token, 2, 64 * 1024)).release();
      const baseline = rssOf(child.pid!);

      const plain = await unauthenticatedBodies(port, 50, MiB);
      const tunnel = await tunnelBodies(url, token, 60, MiB);
      const grown = rssOf(child.pid!) - baseline;
      const sent = 50 * MiB + 60 * MiB;
      // Held: the agent's 16 MiB budget plus the allocator's and the collector's slack, 39–47 MiB
      // in runs here (48.5 once in CI, beside other tests). Without either bound the server would
      // hold the 50 or the 60 MiB sent on top of that, past 60.
      assert.ok(grown < 60 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB for ${sent / MiB} MiB sent`);
      await eventually(async () => (plain.refused === 50 ? true : undefined), 10_000, "every unauthenticated call answered and closed");
      // 16 MiB holds four near-limit declarations: every stream past them is refused.
      await eventually(async () => (tunnel.refused >= 56 ? true : undefined), 10_000, `streams past the budget refused (${tunnel.refused})`);
      plain.release();
      tunnel.release();
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
    } finally {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    }
  });
});
