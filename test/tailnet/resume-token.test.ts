import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { ResumeTokenError, ResumeTokens } from "../../src/tailnet/resume-token.js";
import { eventually } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";

forEachEngine((t) => {
  test("every replica of a database shares one key: a token one issues, another verifies", async () => {
    const peerId = randomUUID();
    const first = ResumeTokens.fromDatabase(t.db);
    const second = ResumeTokens.fromDatabase(t.db);
    assert.equal(await second.verify((await first.issue(peerId)).token!), peerId);
  });
});

test("a tampered token, one signed with another key and garbage are refused", async () => {
  const tokens = new ResumeTokens(randomBytes(32));
  const { token } = await tokens.issue(randomUUID());
  const [header, payload, signature] = token!.split(".");
  const forged = Buffer.from(JSON.stringify({ sub: randomUUID(), exp: Math.floor(Date.now() / 1000) + 3600 })).toString("base64url");
  for (const bad of [`${header}.${forged}.${signature}`, `${header}.${payload}.${signature!.slice(0, -2)}xx`, "garbage", ""]) {
    await assert.rejects(tokens.verify(bad), (err: unknown) => err instanceof ResumeTokenError && err.message === "invalid resume token");
  }
  await assert.rejects(new ResumeTokens(randomBytes(32)).verify(token!), ResumeTokenError);
});

test("an expired token is refused as expired", async () => {
  const tokens = new ResumeTokens(randomBytes(32), 1_000);
  const { token } = await tokens.issue(randomUUID());
  await eventually(
    () => tokens.verify(token!).then(() => undefined, (err: Error) => (err.message === "resume token expired" ? true : undefined)),
    5_000,
    "expiry",
  );
});
