import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { extname, join } from "node:path";
import { writeError } from "../auth/http-error.js";
import { ASSET_CONTENT_TYPES, ASSETS_URL_PATH, dashboardBundleDir } from "./dashboard-bundle.js";

/**
 * Serves the dashboard's build output: the page at `/` and `/ui/`, its assets under
 * `/ui/assets/`. Answers GET and HEAD of those paths and returns true; returns false for
 * anything else, for the next route to answer.
 */
export type DashboardHandler = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => boolean;

/**
 * Only this origin's scripts, styles, images and RPCs; no inline script or style, no plugins, no
 * framing, no form posts (the sign-in form never submits: the page reads it).
 */
export const DASHBOARD_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join("; ");

/** Every dashboard answer carries these. */
const SECURITY_HEADERS = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};
/** The page names its assets by hash, so it must be revalidated each time. */
const INDEX_CACHE = "no-cache";
/** An asset's name changes with its content: a year, as long as caches keep anything. */
const ASSET_CACHE = "public, max-age=31536000, immutable";

interface File {
  body: Buffer;
  type: string;
  etag: string;
}

interface Bundle {
  index: File;
  assets: Map<string, File>;
}

/**
 * The dashboard route. The bundle is read into memory at the first request (it is a few hundred
 * KB, and only the build's own files are served: no path from a request reaches the file
 * system); while it is missing, the page's paths answer 503 saying to build it.
 */
export function dashboardHandler(dir = dashboardBundleDir()): DashboardHandler {
  let loading: Promise<Bundle> | undefined;
  const bundle = () => {
    loading ??= loadBundle(dir).catch((err: unknown) => {
      // Not built yet: look again at the next request.
      loading = undefined;
      throw err;
    });
    return loading;
  };
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split("?", 1)[0]!;
    if (path === "/ui") {
      res.writeHead(308, { ...SECURITY_HEADERS, location: "/ui/" }).end();
      return true;
    }
    if (path !== "/" && !path.startsWith("/ui/")) return false;
    bundle().then(
      (b) => {
        const file = path === "/" || path === "/ui/" ? b.index : path.startsWith(ASSETS_URL_PATH) ? b.assets.get(path.slice(ASSETS_URL_PATH.length)) : undefined;
        if (file === undefined) return writeError(res as ServerResponse, 404, { message: "Not found.", detail: `no dashboard file ${path}` });
        send(req, res, file, file === b.index ? INDEX_CACHE : ASSET_CACHE);
      },
      (err: unknown) =>
        writeError(res as ServerResponse, 503, {
          message: "The dashboard is not built.",
          detail: `run \`npm run build\` (${err instanceof Error ? err.message : String(err)})`,
        }),
    );
    return true;
  };
}

function send(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, file: File, cacheControl: string): void {
  const headers = { ...SECURITY_HEADERS, "content-type": file.type, "cache-control": cacheControl, etag: file.etag };
  if (req.headers["if-none-match"] === file.etag) {
    res.writeHead(304, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, "content-length": file.body.length });
  if (req.method === "HEAD") res.end();
  else res.end(file.body);
}

async function loadBundle(dir: string): Promise<Bundle> {
  const index = file(await readFile(join(dir, "index.html")), "text/html; charset=utf-8");
  const assets = new Map<string, File>();
  const assetsDir = join(dir, "assets");
  for (const name of await readdir(assetsDir)) {
    const type = ASSET_CONTENT_TYPES[extname(name)];
    if (type !== undefined) assets.set(name, file(await readFile(join(assetsDir, name)), type));
  }
  return { index, assets };
}

function file(body: Buffer, type: string): File {
  return { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` };
}
