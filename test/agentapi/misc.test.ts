import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import type { AgentServer } from "../../src/server/agent-server.js";
import { silentLogger } from "../../src/log.js";
import { startAgentgate } from "../../src/server/start.js";
import { testServerConfig, useTestDatabase } from "../support/agent-server.js";
import { provisionAgent, rejectsWith, withTunnel } from "./support.js";

describe("banners, boundary logs, PushContextState", () => {
  const t = useTestDatabase();
  let server: AgentServer;
  let url: string;
  const lines: Record<string, unknown>[] = [];
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentgate-banners-"));
    const bannersFile = join(dir, "banners.json");
    await writeFile(bannersFile, JSON.stringify({
      serviceBanner: { enabled: true, message: "maintenance at 5", backgroundColor: "#ff0000" },
      announcementBanners: [{ enabled: true, message: "hello", backgroundColor: "#00ff00" }],
    }));
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    server = await startAgentgate(testServerConfig({ bannersFile }), t.db, pino({ level: "info" }, sink));
    url = `http://127.0.0.1:${server.address.port}`;
  });
  after(() => server.shutdown());

  test("banners come from --banners", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(url, a.token, async (tun) => {
      const service = await tun.agent.getServiceBanner({});
      assert.deepEqual([service.enabled, service.message, service.backgroundColor], [true, "maintenance at 5", "#ff0000"]);
      const ann = await tun.agent.getAnnouncementBanners({});
      assert.deepEqual(ann.announcementBanners.map((b) => b.message), ["hello"]);
    });
  });

  for (const [content, field] of [
    [{ serviceBanner: { enabled: "yes", message: 5 } }, /--banners .*: cannot decode field coder\.agent\.v2\.ServiceBanner\.enabled from JSON/],
    [{ announcementBanners: [{ message: "hi", colour: "red" }] }, /--banners .*: .*BannerConfig.*key "colour" is unknown/],
    [{ banner: {} }, /--banners .*: unknown key "banner"/],
  ] as const) {
    test(`a banners file ${JSON.stringify(content)} fails the start, naming what is wrong`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "agentgate-banners-"));
      const bannersFile = join(dir, "banners.json");
      await writeFile(bannersFile, JSON.stringify(content));
      await assert.rejects(startAgentgate(testServerConfig({ bannersFile }), t.db, silentLogger()), field);
    });
  }

  test("ReportBoundaryLogs writes each entry to the server log at info with the agent's fields", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(url, a.token, (tun) =>
      tun.agent.reportBoundaryLogs({
        sessionId: "s-1", confinedProcessName: "claude",
        logs: [
          { allowed: true, time: timestampFromDate(new Date("2030-01-01T00:00:00Z")), sequenceNumber: 0, resource: { case: "httpRequest", value: { method: "GET", url: "https://example.com/", matchedRule: "allow example.com" } } },
          { allowed: false, sequenceNumber: 1, resource: { case: "httpRequest", value: { method: "POST", url: "https://evil.example/", matchedRule: "" } } },
        ],
      }),
    );
    const mine = lines.filter((l) => l.msg === "boundary request" && l.agent_id === a.agentId);
    assert.equal(mine.length, 2);
    assert.deepEqual(
      mine.map((l) => [l.level, l.workspace_id, l.owner, l.session_id, l.confined_process_name, l.allowed, l.http_method, l.http_url, l.sequence_number]),
      [
        [30, a.workspaceId, a.owner, "s-1", "claude", true, "GET", "https://example.com/", 0],
        [30, a.workspaceId, a.owner, "s-1", "claude", false, "POST", "https://evil.example/", 1],
      ],
    );
  });

  test("PushContextState answers Unimplemented", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(url, a.token, (tun) => rejectsWith(tun.agent.pushContextState({}), Code.Unimplemented));
  });
});
