import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isProcessAlive } from "../process-alive.js";

/**
 * The files a running `serve` leaves in its data folder so that other commands on the same
 * machine can reach it: PGlite lets one process open the folder, so `workspace` and `status` go
 * through the server's control API instead. Reading `admin-token` needs the same filesystem
 * access as the database itself, which is what makes its reader the operator.
 */

/** `{"url": "http://127.0.0.1:3000", "pid": 1234}`: where the serving process listens. */
export const SERVER_FILE = "server.json";
/** The generated admin token, mode 0600. */
export const ADMIN_TOKEN_FILE = "admin-token";
/** Owner read/write only: the token is the operator's secret. */
const PRIVATE_MODE = 0o600;

/** What `server.json` holds. */
export interface ServerFile {
  url: string;
  pid: number;
}

/** Files written by {@link writeServerFiles}; `remove` deletes those still holding what this process wrote. */
export interface ServerFiles {
  remove(): Promise<void>;
}

/**
 * Writes `server.json` and `admin-token` (each when given) into `dir`, each replaced atomically
 * (written beside, then renamed) so a reader never sees half a file.
 */
export async function writeServerFiles(dir: string, files: { server?: ServerFile; adminToken?: string | undefined }): Promise<ServerFiles> {
  await mkdir(dir, { recursive: true });
  const written = [
    ...(files.server === undefined ? [] : [[join(dir, SERVER_FILE), `${JSON.stringify(files.server)}\n`]]),
    ...(files.adminToken === undefined ? [] : [[join(dir, ADMIN_TOKEN_FILE), `${files.adminToken}\n`]]),
  ] as [string, string][];
  for (const [path, text] of written) await writeAtomically(path, text);
  return {
    async remove() {
      // Another serve may have taken the folder over since (PGlite's lock allows it once this one
      // stopped holding it): leave its files alone.
      for (const [path, text] of written) await removeIfUnchanged(path, text);
    },
  };
}

/** The server named by `dataDir/server.json`, if that file exists and its process is alive. */
export async function readRunningServer(dataDir: string): Promise<ServerFile | undefined> {
  let parsed: Partial<ServerFile>;
  try {
    parsed = JSON.parse(await readFile(join(dataDir, SERVER_FILE), "utf8")) as Partial<ServerFile>;
  } catch {
    return undefined;
  }
  if (typeof parsed.url !== "string" || typeof parsed.pid !== "number" || !isProcessAlive(parsed.pid)) return undefined;
  return { url: parsed.url, pid: parsed.pid };
}

/** The admin token a `serve` generated into `dataDir`, if any. */
export async function readAdminTokenFile(dataDir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(dataDir, ADMIN_TOKEN_FILE), "utf8")).trim() || undefined;
  } catch {
    return undefined;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomUUID()}.tmp`;
  await writeFile(tmp, text, { mode: PRIVATE_MODE, flag: "wx" });
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

async function removeIfUnchanged(path: string, text: string): Promise<void> {
  const now = await readFile(path, "utf8").catch(() => undefined);
  if (now === text) await unlink(path).catch(() => undefined);
}
