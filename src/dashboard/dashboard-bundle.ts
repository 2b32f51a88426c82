import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where the dashboard's build output lives and what it is made of, shared by the build
 * (build-dashboard.ts) and the server (serve-dashboard.ts):
 *
 *   <package>/dist/dashboard/index.html          the page, naming its assets by hash
 *   <package>/dist/dashboard/assets/<name>-<hash>.<ext>
 *
 * The same folder serves from the TypeScript sources (tsx) and from the compiled `dist/src`.
 */

/** The URL path the page loads its assets from; `index.html` names them absolutely, so `/` and `/ui/` both work. */
export const ASSETS_URL_PATH = "/ui/assets/";

/** Content types of the files a build writes into `assets/`; any other file there is not served. */
export const ASSET_CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** The package's root: the nearest folder above this module with a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("dashboard: no package.json above the server's modules");
    dir = up;
  }
  return dir;
}

/** `<package>/dist/dashboard`. */
export function dashboardBundleDir(): string {
  return join(packageRoot(), "dist", "dashboard");
}

/** `<package>/src/dashboard/page`: the page's sources, which the build reads. */
export function dashboardSourceDir(): string {
  return join(packageRoot(), "src", "dashboard", "page");
}
