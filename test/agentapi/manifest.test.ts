import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { WorkspaceApp_Health, WorkspaceApp_SharingLevel } from "../../gen/coder/agent/v2/agent_pb.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { assertCut, provisionAgent, rejectsWith, uuidString, withTunnel } from "./support.js";

/** Coder's manifest test sends a script of this size through: it must fit in one RPC message. */
const BIG_SCRIPT_BYTES = 512_000;

const DERP_MAP = {
  regions: {
    "999": {
      regionId: 999, regionCode: "test", regionName: "Test",
      nodes: [{ name: "t1", regionId: 999, hostName: "derp.example.com", stunPort: 3478, derpPort: 443 }],
    },
  },
};

describe("GetManifest", () => {
  const t = useTestDatabase();
  let full: TestServer;
  let plain: TestServer;
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentgate-manifest-"));
    const derpMapFile = join(dir, "derp.json");
    await writeFile(derpMapFile, JSON.stringify(DERP_MAP));
    full = await startTestServer(t.db, {
      accessUrl: new URL("https://coder.example.com:8443"),
      appHostname: "*.apps.example.com",
      derpMapFile,
      blockDirectConnections: true,
      derpForceWebsockets: true,
    });
    plain = await startTestServer(t.db);
  });
  after(async () => {
    await full.close();
    await plain.close();
  });

  const spec = {
    directory: "/home/coder/project",
    env: { EDITOR: "vim", LANG: "C.UTF-8" },
    motd_file: "/etc/motd",
    apps: [{
      slug: "code", display_name: "Code", icon: "/icon/code.svg", url: "http://localhost:8080", subdomain: true,
      sharing_level: "public", hidden: true, healthcheck: { url: "http://localhost:8080/healthz", interval_seconds: 5, threshold: 6 },
    }],
    scripts: [{ display_name: "Big", script: "x".repeat(BIG_SCRIPT_BYTES), run_on_start: true, start_blocks_login: true, timeout_seconds: 600, cron: "" }],
    metadata: [
      { key: "cpu", display_name: "CPU", script: "echo 1", interval_seconds: 10, timeout_seconds: 3 },
      { key: "mem", display_name: "Memory", script: "echo 2", interval_seconds: 20, timeout_seconds: 5 },
    ],
    devcontainers: [{ workspace_folder: "/src", config_path: ".devcontainer/devcontainer.json", name: "dev" }],
  };

  test("carries ids, names, env, directory, motd, apps, a 512,000-byte script, metadata, devcontainers and DERP settings", async () => {
    const a = await provisionAgent(t.db, spec);
    const m = await withTunnel(full.url, a.token, (tun) => tun.agent.getManifest({}));
    assert.equal(uuidString(m.agentId), a.agentId);
    assert.equal(m.agentName, "main");
    assert.equal(uuidString(m.workspaceId), a.workspaceId);
    assert.equal(m.workspaceName, a.workspaceName);
    assert.equal(m.ownerUsername, a.owner);
    assert.deepEqual(m.environmentVariables, spec.env);
    assert.equal(m.directory, "/home/coder/project");
    assert.equal(m.motdPath, "/etc/motd");
    assert.equal(m.gitAuthConfigs, 0);
    assert.equal(m.parentId, undefined);
    assert.equal(m.vsCodePortProxyUri, `https://{{port}}--main--${a.workspaceName}--${a.owner}.apps.example.com:8443`);

    assert.equal(m.apps.length, 1);
    const app = m.apps[0]!;
    assert.equal(app.slug, "code");
    assert.equal(app.displayName, "Code");
    assert.equal(app.url, "http://localhost:8080");
    assert.equal(app.icon, "/icon/code.svg");
    assert.equal(app.subdomain, true);
    assert.equal(app.subdomainName, `code--main--${a.workspaceName}--${a.owner}`);
    assert.equal(app.sharingLevel, WorkspaceApp_SharingLevel.PUBLIC);
    assert.equal(app.health, WorkspaceApp_Health.INITIALIZING);
    assert.equal(app.hidden, true);
    assert.equal(app.healthcheck?.url, "http://localhost:8080/healthz");
    assert.equal(app.healthcheck?.interval?.seconds, 5n);
    assert.equal(app.healthcheck?.threshold, 6);

    assert.equal(m.scripts.length, 1);
    const script = m.scripts[0]!;
    assert.equal(script.script.length, BIG_SCRIPT_BYTES);
    assert.equal(script.displayName, "Big");
    assert.equal(script.runOnStart, true);
    assert.equal(script.startBlocksLogin, true);
    assert.equal(script.timeout?.seconds, 600n);
    assert.equal(script.logSourceId.length, 16);
    assert.equal(script.id.length, 16);

    assert.deepEqual(m.metadata.map((d) => d.key), ["cpu", "mem"]);
    const cpu = m.metadata[0]!;
    assert.equal(cpu.displayName, "CPU");
    assert.equal(cpu.script, "echo 1");
    // The quirk: seconds travel as nanoseconds.
    assert.deepEqual([cpu.interval?.seconds, cpu.interval?.nanos], [0n, 10]);
    assert.deepEqual([cpu.timeout?.seconds, cpu.timeout?.nanos], [0n, 3]);

    assert.equal(m.devcontainers.length, 1);
    assert.equal(m.devcontainers[0]!.workspaceFolder, "/src");
    assert.equal(m.devcontainers[0]!.configPath, ".devcontainer/devcontainer.json");
    assert.equal(m.devcontainers[0]!.name, "dev");

    assert.equal(m.disableDirectConnections, true);
    assert.equal(m.derpForceWebsockets, true);
    const node = m.derpMap?.regions["999"]?.nodes[0];
    assert.equal(node?.hostName, "derp.example.com");
    assert.equal(node?.stunPort, -1, "block-direct removes STUN");
  });

  test("without --app-hostname, no port proxy URI and no subdomain names; the DERP map is empty by default", async () => {
    const a = await provisionAgent(t.db, spec);
    const m = await withTunnel(plain.url, a.token, (tun) => tun.agent.getManifest({}));
    assert.equal(m.vsCodePortProxyUri, "");
    assert.equal(m.apps[0]!.subdomainName, "");
    assert.deepEqual(m.derpMap?.regions, {});
    assert.equal(m.disableDirectConnections, false);
    assert.equal(m.derpForceWebsockets, false);
  });

  test("an agent with nothing provisioned gets empty lists and no env", async () => {
    const a = await provisionAgent(t.db);
    const m = await withTunnel(plain.url, a.token, (tun) => tun.agent.getManifest({}));
    assert.deepEqual([m.apps, m.scripts, m.metadata, m.devcontainers], [[], [], [], []]);
    assert.deepEqual(m.environmentVariables, {});
  });

  test("an agent row deleted mid-session cuts its tunnel, and its next call fails", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(plain.url, a.token, async (tun) => {
      await tun.agent.getManifest({});
      await t.db.query("UPDATE workspace_agents SET deleted = true WHERE id = $1", [a.agentId]);
      await assertCut(tun, "workspace agent deleted");
      await assert.rejects(tun.agent.getManifest({}));
    });
  });
});
