import { HttpError } from "../http/http-error.js";
import { CURRENT_API_MAJOR, CURRENT_API_MINOR, CURRENT_API_VERSION, DEFAULT_API_VERSION } from "../protocol/agent-rpc.js";

/**
 * Validates the version an agent asks for against the server's, with coderd's messages: the same
 * major, a minor no newer than the server's. Returns the version to keep for the connection
 * (absent or empty means 2.0). Throws a 400 with a `version` validation.
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
