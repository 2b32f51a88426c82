/**
 * Builds the dashboard into dist/dashboard: the page's TypeScript bundled with esbuild (connect-web
 * and protobuf-es included, nothing fetched at run time), its stylesheet and icon, each named by
 * content hash, and index.html naming them. `npm run build` runs this file; test support calls
 * {@link buildDashboard} so a server started from the sources serves the current page.
 *
 * Every file is written to a temporary name and renamed into place, so a server (or a second
 * build running at the same time, as parallel test files do) never reads half a file.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { ASSETS_URL_PATH, dashboardBundleDir, dashboardSourceDir } from "./dashboard-bundle.js";

/** Browsers the page is built for: every evergreen browser of the last few years. */
const TARGET = ["es2022", "chrome100", "firefox100", "safari16"];
/** Hex digits of the content hash in a file name: enough that two builds never collide. */
const HASH_LENGTH = 12;

/** Builds the page into `outDir` (default dist/dashboard); resolves to the asset names written. */
export async function buildDashboard(outDir = dashboardBundleDir()): Promise<string[]> {
  const src = dashboardSourceDir();
  const assetsDir = join(outDir, "assets");
  await mkdir(assetsDir, { recursive: true });
  const result = await build({
    entryPoints: [join(src, "main.ts"), join(src, "dashboard.css")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: TARGET,
    minify: true,
    legalComments: "none",
    entryNames: "[name]-[hash]",
    outdir: assetsDir,
    write: false,
    logLevel: "silent",
  });
  const files = new Map<string, Uint8Array>();
  for (const out of result.outputFiles) files.set(basename(out.path), out.contents);
  const icon = await readFile(join(src, "favicon.svg"));
  files.set(`favicon-${contentHash(icon)}.svg`, icon);
  const named = (ext: string) => {
    const name = [...files.keys()].find((n) => extname(n) === ext);
    if (name === undefined) throw new Error(`dashboard build: no ${ext} output`);
    return ASSETS_URL_PATH + name;
  };
  const html = (await readFile(join(src, "index.html"), "utf8"))
    .replaceAll("%SCRIPT%", named(".js"))
    .replaceAll("%STYLE%", named(".css"))
    .replaceAll("%ICON%", named(".svg"));
  for (const [name, contents] of files) await writeAtomically(join(assetsDir, name), contents);
  await writeAtomically(join(outDir, "index.html"), html);
  // Assets of earlier builds: nothing names them any more.
  for (const name of await readdir(assetsDir)) {
    if (!files.has(name) && !name.endsWith(TEMP_SUFFIX)) await rm(join(assetsDir, name), { force: true });
  }
  return [...files.keys()];
}

const TEMP_SUFFIX = ".tmp";

async function writeAtomically(path: string, contents: Uint8Array | string): Promise<void> {
  const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}${TEMP_SUFFIX}`;
  await writeFile(temp, contents);
  await rename(temp, path);
}

function contentHash(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex").slice(0, HASH_LENGTH).toUpperCase();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const names = await buildDashboard();
  process.stdout.write(`dashboard: ${dashboardBundleDir()} (${names.join(", ")})\n`);
}
