import { HttpError } from "./http-error.js";

/** The newest Agent/Tailnet API minor version whose messages this server knows (contract C1). */
export const CURRENT_API_MAJOR = 2;
export const CURRENT_API_MINOR = 13;
export const CURRENT_API_VERSION = `${CURRENT_API_MAJOR}.${CURRENT_API_MINOR}`;
/** What an agent that sends no version gets: the first 2.x API (Coder v2.7 agents dial without one). */
export const DEFAULT_API_VERSION = "2.0";

/**
 * Validates the `version` query parameter against the server's version (agent-api.md §1.3)
 * and returns the version to keep for the session. Throws a 400 with a `version` validation.
 */
export function negotiateApiVersion(requested: string | null | undefined): string {
  const version = requested ? requested : DEFAULT_API_VERSION;
  const problem = versionProblem(version);
  if (problem !== undefined) {
    throw new HttpError(400, {
      message: "Unknown or unsupported API version",
      validations: [{ field: "version", detail: problem }],
    });
  }
  return version;
}

function versionProblem(version: string): string | undefined {
  const parts = version.split(".");
  if (parts.length !== 2) return `invalid version string: ${version}`;
  const [majorText, minorText] = parts as [string, string];
  if (!/^\d+$/.test(majorText)) return `invalid major version: ${version}`;
  if (!/^\d+$/.test(minorText)) return `invalid minor version: ${version}`;
  const major = Number(majorText);
  const minor = Number(minorText);
  if (major > CURRENT_API_MAJOR) {
    return `server is at version ${CURRENT_API_VERSION}, behind requested major version ${version}`;
  }
  if (major < CURRENT_API_MAJOR) return `version ${version} is no longer supported`;
  if (minor > CURRENT_API_MINOR) {
    return `server is at version ${CURRENT_API_VERSION}, behind requested minor version ${version}`;
  }
  return undefined;
}
