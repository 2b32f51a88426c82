import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import { connect as connectHttp2 } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildDashboard } from "../../src/dashboard/build-dashboard.js";
import { DASHBOARD_CSP, dashboardHandler } from "../../src/dashboard/serve-dashboard.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";

const ADMIN_TOKEN = "test-admin-token";

/** The assets index.html names, e.g. /ui/assets/main-ABCD1234.js. */
function assetPaths(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
}

/** GET of a path exactly as given (fetch would normalise `..` away). */
function rawPath(url: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c)).on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject).end();
  });
}

describe("the dashboard's HTTP answers", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let index: Response;
  let html: string;
  before(async () => {
    await buildDashboard();
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN });
    index = await fetch(`${srv.url}/`);
    html = await index.text();
  });
  after(async () => {
    await srv.close();
  });

  test("/ is the page as HTML, revalidated each time, with a self-only CSP that forbids framing and sniffing", () => {
    assert.equal(index.status, 200);
    assert.deepEqual(
      ["content-type", "cache-control", "x-content-type-options", "x-frame-options"].map((h) => index.headers.get(h)),
      ["text/html; charset=utf-8", "no-cache", "nosniff", "DENY"],
    );
    assert.equal(index.headers.get("content-security-policy"), DASHBOARD_CSP);
    assert.match(DASHBOARD_CSP, /(^|; )default-src 'none'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )script-src 'self'(;|$)/);
    assert.match(DASHBOARD_CSP, /(^|; )frame-ancestors 'none'(;|$)/);
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval|\*|https?:/);
  });

  test("the page has no inline script or style and loads only hashed assets of this server", () => {
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "an inline script");
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, "inline style or handler");
    const paths = assetPaths(html);
    assert.ok(paths.some((p) => p.endsWith(".js")) && paths.some((p) => p.endsWith(".css")), paths.join(" "));
    for (const p of paths) assert.match(p, /^\/ui\/assets\/[a-z]+-[0-9A-Z]{8,}\.(js|css|svg)$/);
  });

  test("each asset has its content type, nosniff and a year's immutable caching", async () => {
    const types: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8", svg: "image/svg+xml" };
    for (const p of new Set(assetPaths(html))) {
      const res = await fetch(srv.url + p);
      await res.arrayBuffer();
      assert.deepEqual(
        [res.status, res.headers.get("content-type"), res.headers.get("cache-control"), res.headers.get("x-content-type-options")],
        [200, types[p.split(".").pop()!], "public, max-age=31536000, immutable", "nosniff"],
        p,
      );
    }
  });

  test("/ui/ is the same page; /ui redirects to it", async () => {
    const ui = await fetch(`${srv.url}/ui/`);
    assert.equal(await ui.text(), html);
    const bare = await fetch(`${srv.url}/ui`, { redirect: "manual" });
    assert.deepEqual([bare.status, bare.headers.get("location")], [308, "/ui/"]);
  });

  test("a request with the page's ETag is 304 Not Modified; HEAD gives the headers alone", async () => {
    const etag = index.headers.get("etag");
    assert.ok(etag);
    const again = await fetch(`${srv.url}/`, { headers: { "if-none-match": etag } });
    assert.deepEqual([again.status, await again.text()], [304, ""]);
    const head = await fetch(`${srv.url}/`, { method: "HEAD" });
    assert.deepEqual([head.status, head.headers.get("content-length"), head.headers.get("content-type")], [200, String(Buffer.byteLength(html)), "text/html; charset=utf-8"]);
  });

  test("an unknown asset and a path climbing out of the assets are 404 JSON", async () => {
    for (const path of ["/ui/assets/nope-AAAAAAAA.js", "/ui/assets/../../package.json", "/ui/assets/%2e%2e/%2e%2e/package.json", "/ui/other"]) {
      const res = await rawPath(srv.url, path);
      assert.equal(res.status, 404, path);
      assert.equal((JSON.parse(res.body) as { message: string }).message, "Not found.", path);
    }
  });

  test("the page is served over h2c as over HTTP/1.1", async () => {
    const session = connectHttp2(srv.url);
    try {
      const { status, type, body } = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/" });
        let headers: Record<string, unknown> = {};
        let body = "";
        req.on("response", (h) => (headers = h)).setEncoding("utf8").on("data", (c: string) => (body += c));
        req.on("end", () => resolve({ status: headers[":status"] as number, type: headers["content-type"] as string, body })).on("error", reject);
      });
      assert.deepEqual([status, type, body], [200, "text/html; charset=utf-8", html]);
    } finally {
      session.close();
    }
  });

  test("the other routes answer as before: a POST to / is Connect's 404, /healthz is ok", async () => {
    const post = await fetch(`${srv.url}/`, { method: "POST", body: "{}", headers: { "content-type": "application/json" } });
    assert.deepEqual([post.status, ((await post.json()) as { code: string }).code], [404, "unimplemented"]);
    assert.equal(await (await fetch(`${srv.url}/healthz`)).text(), "ok\n");
  });

  test("GetServerStats with a wrong admin token is HTTP 401 unauthenticated, with the token's reason", async () => {
    const res = await fetch(`${srv.url}/agentgate.control.v1.ControlService/GetServerStats`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json", authorization: "Bearer wrong" },
    });
    assert.deepEqual([res.status, await res.json()], [401, { code: "unauthenticated", message: "invalid admin token" }]);
  });
});

describe("the dashboard route without a build", () => {
  let dir: string;
  let server: Server;
  let url: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentgate-dashboard-"));
    const handler = dashboardHandler(dir);
    server = createServer((req, res) => {
      if (!handler(req, res)) res.writeHead(418).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  test("answers 503 saying to run the build, then serves the page once it is built", async () => {
    const missing = await fetch(`${url}/`);
    assert.equal(missing.status, 503);
    const body = (await missing.json()) as { message: string; detail: string };
    assert.equal(body.message, "The dashboard is not built.");
    assert.match(body.detail, /npm run build/);
    await buildDashboard(dir);
    const built = await fetch(`${url}/`);
    assert.deepEqual([built.status, built.headers.get("content-type")], [200, "text/html; charset=utf-8"]);
    await built.text();
  });

  test("leaves other paths and methods to the next route", async () => {
    const [other, post] = await Promise.all([fetch(`${url}/healthz`), fetch(`${url}/`, { method: "POST" })]);
    assert.deepEqual([other.status, post.status], [418, 418]);
  });
});
