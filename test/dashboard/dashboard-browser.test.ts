/**
 * The dashboard in a real browser: Debian's headless Chromium driven by playwright-core, against a
 * server started here, with the reference agent (`agentgate agent`) as a child process. Each step
 * leaves a screenshot in test-results/dashboard/. Skipped when /usr/bin/chromium is missing
 * (`apt-get install chromium`).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { buildDashboard } from "../../src/dashboard/build-dashboard.js";
import { forEachEngine } from "../support/database.js";
import { startTestServer, type TestServer } from "../support/agent-server.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const SCREENSHOTS = resolve(import.meta.dirname, "..", "..", "test-results", "dashboard");
const ADMIN_TOKEN = "dashboard-test-admin-token";
/** How soon after the agent's tunnel is up the page must show it connected: "live" to a person. */
const LIVE_WITHIN_MS = 1_000;
/** Bound for everything else the page waits for (an agent running its scripts on a shared machine). */
const STEP_TIMEOUT_MS = 20_000;

/** Runs `agentgate agent`; resolves `connected` when it logs that its tunnel is up. */
function startReferenceAgent(url: string, token: string): { child: ChildProcess; connected: Promise<void>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, "agent", "--url", url, "--token", token], {
    env: { ...process.env, AGENTGATE_URL: "", AGENTGATE_AGENT_TOKEN: "" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const connected = new Promise<void>((resolveConnected, reject) => {
    const timer = setTimeout(() => reject(new Error(`agentgate agent did not connect within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (logMessage(line) === "connected") {
        clearTimeout(timer);
        resolveConnected();
      }
    });
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, connected, exited };
}

/** A pino JSON line's `msg`. */
function logMessage(line: string): string | undefined {
  try {
    return (JSON.parse(line) as { msg?: string }).msg;
  } catch {
    return undefined;
  }
}

/** Something for the app's health check to find healthy. */
async function startAppServer(): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not installed (apt-get install chromium)`;

describe("the dashboard in Chromium", { skip }, () => {
  forEachEngine((t) => {
    let srv: TestServer;
    let control: ControlClient;
    let app: { server: Server; url: string };
    let userDataDir: string;
    let context: BrowserContext;
    let page: Page;
    let agent: ReturnType<typeof startReferenceAgent> | undefined;
    let agentId: string;
    let token: string;
    const owner = `u-${randomUUID().slice(0, 8)}`;
    const pageErrors: string[] = [];
    const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `${t.name}-${name}.png`), fullPage: true });
    const row = (id: string) => page.locator(`tr.agent[data-agent-id="${id}"]`);

    before(async () => {
      await Promise.all([buildDashboard(), mkdir(SCREENSHOTS, { recursive: true })]);
      srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN, agentUpdateIntervalMs: 500, agentInactiveTimeoutMs: 2_000, metadataFlushIntervalMs: 100 });
      control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
      app = await startAppServer();
      userDataDir = await mkdtemp(join(tmpdir(), "agentgate-chromium-"));
      context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, viewport: { width: 1360, height: 900 } });
      page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(STEP_TIMEOUT_MS);
      page.on("pageerror", (err) => pageErrors.push(err.message));
      page.on("console", (msg) => {
        // The browser reports the refused sign-in's 401 itself; anything else (a CSP violation, an exception) is a defect.
        if (msg.type() === "error" && !/status of 401/.test(msg.text())) pageErrors.push(msg.text());
      });
    });
    after(async () => {
      agent?.child.kill("SIGKILL");
      await context?.close();
      await srv?.close();
      await new Promise((r) => app?.server.close(r));
      if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
    });

    test("asks for the admin token, and a wrong one is refused with the server's reason and not kept", async () => {
      await page.goto(`${srv.url}/`);
      await page.locator("#sign-in").waitFor();
      await shot("01-sign-in");
      await page.fill("#token", "not-the-token");
      await page.click("#sign-in-button");
      await page.locator("#sign-in-error", { hasText: "The server refused this admin token: invalid admin token." }).waitFor();
      await shot("02-wrong-token");
      assert.equal(await page.evaluate("sessionStorage.length"), 0);
      assert.equal(page.url(), `${srv.url}/`);
    });

    test("signs in with the admin token, kept in sessionStorage and never in the URL, and shows the server's figures", async () => {
      await page.fill("#token", ADMIN_TOKEN);
      await page.click("#sign-in-button");
      await page.locator("#live.live").waitFor();
      await page.locator(".figure-agents .card-value", { hasText: "0" }).waitFor();
      // A line from the sample taken at start to now (flat, so "attached" rather than "visible").
      await page.locator("#plot-agents path.line.agents").waitFor({ state: "attached" });
      await page.locator("#plot-rpcs path.line.rpcs").waitFor({ state: "attached" });
      assert.equal(await page.evaluate('sessionStorage.getItem("agentgate.adminToken")'), ADMIN_TOKEN);
      assert.ok(!page.url().includes(ADMIN_TOKEN), page.url());
      await shot("03-signed-in");
    });

    test("a new workspace's agent appears as it is made, connecting", async () => {
      const created = await control.createWorkspace({
        owner,
        name: "dev",
        spec: {
          agents: [{
            name: "main",
            apps: [{ slug: "web", displayName: "Web", url: app.url, healthcheck: { url: `${app.url}/`, intervalSeconds: 1, threshold: 1 } }],
            scripts: [{ displayName: "Hello", script: "echo hello from the start script; echo second line", runOnStart: true, timeoutSeconds: 30 }],
            metadata: [{ key: "greeting", displayName: "Greeting", script: "echo hi there", intervalSeconds: 1, timeoutSeconds: 1 }],
          }],
        },
      });
      agentId = created.agents[0]!.id;
      token = created.agents[0]!.token;
      await row(agentId).and(page.locator('[data-status="connecting"]')).waitFor();
      const heading = page.locator("tr.workspace th").first();
      assert.deepEqual([await heading.textContent(), await heading.locator(".build").textContent()], [`${owner}/devbuild 1`, "build 1"]);
      await shot("04-workspace-created");
    });

    test(`the agent shows connected within ${LIVE_WITHIN_MS} ms of \`agentgate agent\` connecting, with its version and this replica`, async (tt) => {
      agent = startReferenceAgent(srv.url, token);
      await agent.connected;
      const since = performance.now();
      await row(agentId).and(page.locator('[data-status="connected"]')).waitFor({ timeout: LIVE_WITHIN_MS });
      tt.diagnostic(`connected on the page ${Math.round(performance.now() - since)} ms after the agent logged its tunnel up`);
      await row(agentId).locator(".lifecycle-ready").waitFor();
      const cells = await row(agentId).locator("td").allInnerTexts();
      assert.deepEqual(cells.slice(0, 5), ["main", "connected", "ready", "now", "v0.1.0"]);
      assert.equal(cells[5], `${srv.server.replicaId.split("-")[0]} this server`);
      await page.locator(".figure-agents .card-value", { hasText: "1" }).waitFor();
      await shot("05-connected");
    });

    test("opening the agent shows its metadata value, healthy app and start script's log lines", async () => {
      await row(agentId).locator("button.open").click();
      const detail = page.locator("#detail");
      await detail.locator(".pill.live").waitFor();
      await detail.locator('tr[data-key="greeting"] td', { hasText: "hi there" }).waitFor();
      await detail.locator('tr[data-slug="web"] .health-healthy').waitFor();
      await detail.locator(".log .output", { hasText: "second line" }).waitFor();
      assert.deepEqual(await detail.locator(".log .output").allInnerTexts(), ["hello from the start script", "second line"]);
      assert.deepEqual(await detail.locator(".log .source").allInnerTexts(), ["Hello", "Hello"]);
      await shot("06-agent-detail");
    });

    test("when the agent stops, the list and the open detail show it off and disconnected", async () => {
      agent!.child.kill("SIGINT");
      assert.equal(await agent!.exited, 0);
      await row(agentId).and(page.locator('[data-status="disconnected"]')).waitFor();
      await row(agentId).locator(".lifecycle-off").waitFor();
      await page.locator("#detail .status-disconnected").waitFor();
      await page.locator(".figure-agents .card-value", { hasText: "0" }).waitFor();
      await shot("07-disconnected");
    });

    test("the logs of the disconnected agent can be opened again", async () => {
      await page.click("#detail button.close");
      assert.equal(await page.locator("#detail").isHidden(), true);
      await row(agentId).locator("button.open").click();
      await page.locator("#detail .log .output", { hasText: "second line" }).waitFor();
      assert.equal(await page.locator("#detail .log").count(), 2);
      await shot("08-logs-after-disconnect");
    });

    test("signing out forgets the token; the page ran without a script error or CSP violation", async () => {
      await page.click("#sign-out");
      await page.locator("#sign-in").waitFor();
      assert.equal(await page.evaluate("sessionStorage.length"), 0);
      assert.deepEqual(pageErrors, []);
    });
  });
});
