import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MAX_HELD_LOG_BYTES } from "../../src/log-destination.js";

const LOG_MODULE = pathToFileURL(fileURLToPath(new URL("../../src/log.ts", import.meta.url))).href;
const TURNS = 300;
const LINES_PER_TURN = 500;

/**
 * A process logging ~30 MB over TURNS event-loop turns to a stdout nobody reads yet, then
 * saying "done" on stderr. With writes that block on a full pipe it never gets there.
 */
const LOGGER_SCRIPT = `
const { createLogger } = await import(${JSON.stringify(LOG_MODULE)});
const log = createLogger({ format: "json" });
const filler = "x".repeat(100);
for (let turn = 0; turn < ${TURNS}; turn++) {
  for (let i = 0; i < ${LINES_PER_TURN}; i++) log.info({ turn, i, filler }, "line");
  await new Promise((resolve) => setImmediate(resolve));
}
process.stderr.write("done\\n");
`;

describe("the JSON log on standard output", () => {
  it("a reader that stops reading never blocks the process: lines past the bound are dropped and counted", { timeout: 120_000 }, async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", LOGGER_SCRIPT], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.pause();
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on("data", () => stderr.includes("done\n") && resolve());
      child.once("exit", (code) => reject(new Error(`exited (${code}) before logging everything: ${stderr}`)));
    });
    // Only now is anything read: everything before went out while stdout was full.
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    const ended = once(child.stdout, "end");
    const exited = once(child, "exit") as Promise<[number]>;
    child.stdout.resume();
    const [[code]] = await Promise.all([exited, ended]);
    assert.equal(code, 0, stderr);
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as { msg: string; dropped_lines?: number; level: string });
    const logged = lines.filter((l) => l.msg === "line").length;
    const notices = lines.filter((l) => l.dropped_lines !== undefined);
    assert.ok(notices.length > 0, "a warning says lines were dropped");
    assert.equal(notices[0]!.level, "warn");
    const dropped = notices.reduce((n, l) => n + l.dropped_lines!, 0);
    assert.ok(logged > 0 && dropped > 0);
    // Every line either came out or was counted, once.
    assert.equal(logged + dropped, TURNS * LINES_PER_TURN, `${logged} logged + ${dropped} dropped`);
    assert.ok(logged * 150 < MAX_HELD_LOG_BYTES * 2, "what was held stayed near the bound");
  });
});
