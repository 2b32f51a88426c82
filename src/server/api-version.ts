import { HttpError } from "../http/http-error.js";
import { CURRENT_API_MAJOR, CURRENT_API_MINOR, DEFAULT_API_VERSION } from "../protocol/agent-rpc.js";

const AGENT = "/coder.agent.v2.Agent";
const TAILNET = "/coder.tailnet.v2.Tailnet";

/**
 * The RPCs a Coder agent may call on its endpoint once it negotiated a minor of API 2, by the
 * minor that brought them (index 0 is 2.0). A Coder agent drops its whole connection and redials
 * when any RPC it calls fails, so a minor can only be offered when all RPCs up to it are served.
 * Tailnet's RefreshResumeToken and WorkspaceUpdates (2.3) are for clients; agents don't call them.
 */
export const AGENT_RPCS_BY_MINOR: readonly (readonly string[])[] = [
  [
    `${AGENT}/GetManifest`,
    `${AGENT}/GetServiceBanner`,
    `${AGENT}/UpdateStats`,
    `${AGENT}/UpdateLifecycle`,
    `${AGENT}/BatchUpdateAppHealths`,
    `${AGENT}/UpdateStartup`,
    `${AGENT}/BatchUpdateMetadata`,
    `${AGENT}/BatchCreateLogs`,
    `${TAILNET}/Coordinate`,
    `${TAILNET}/StreamDERPMaps`,
  ],
  [`${AGENT}/GetAnnouncementBanners`],
  [`${TAILNET}/PostTelemetry`],
  [`${AGENT}/ScriptCompleted`],
  [`${AGENT}/GetResourcesMonitoringConfiguration`, `${AGENT}/PushResourcesMonitoringUsage`, `${AGENT}/ReportConnection`],
  [], // 2.5: Manifest.parent_id
  [`${AGENT}/CreateSubAgent`, `${AGENT}/DeleteSubAgent`, `${AGENT}/ListSubAgents`],
  [`${AGENT}/ReportBoundaryLogs`],
  [`${AGENT}/UpdateAppStatus`],
  [], // 2.9: boundary log fields
  [`${AGENT}/PushContextState`],
  [], // 2.11: Stats.session_counts
  [], // 2.12: TelemetryEvent.client_session_id
  [], // 2.13: Connection.app_name
];

/**
 * RPCs a Coder agent takes an Unimplemented (12) answer to as "feature absent" instead of a
 * failure: its telemetry sender and its context pusher. Coder's own server stubs PushContextState.
 */
export const OPTIONAL_AGENT_RPCS: ReadonlySet<string> = new Set([`${TAILNET}/PostTelemetry`, `${AGENT}/PushContextState`]);

/**
 * The highest minor of API 2 to offer agents: the newest this build knows whose RPCs, and those
 * of every minor before it, are all implemented (or optional). Throws when not even 2.0's are.
 */
export function servedApiMinor(isImplemented: (path: string) => boolean): number {
  let served = -1;
  for (let minor = 0; minor <= CURRENT_API_MINOR; minor++) {
    const rpcs = AGENT_RPCS_BY_MINOR[minor] ?? [];
    if (!rpcs.every((path) => isImplemented(path) || OPTIONAL_AGENT_RPCS.has(path))) break;
    served = minor;
  }
  if (served < 0) throw new Error(`the Agent and Tailnet services lack RPCs of API ${CURRENT_API_MAJOR}.0`);
  return served;
}

/**
 * Validates the version an agent asks for against the server's (`2.serverMinor`), with coderd's
 * messages: the same major, a minor no newer than the server's. Returns the version to keep for
 * the connection (absent or empty means 2.0). Throws a 400 with a `version` validation, the
 * answer on which the newest Coder agents retry with an older minor.
 */
export function negotiateApiVersion(requested: string | null | undefined, serverMinor: number = CURRENT_API_MINOR): string {
  const version = requested ? requested : DEFAULT_API_VERSION;
  const problem = versionProblem(version, serverMinor);
  if (problem !== undefined) {
    throw new HttpError(400, {
      message: "Unknown or unsupported API version",
      validations: [{ field: "version", detail: problem }],
    });
  }
  return version;
}

function versionProblem(version: string, serverMinor: number): string | undefined {
  const serverVersion = `${CURRENT_API_MAJOR}.${serverMinor}`;
  const parts = version.split(".");
  if (parts.length !== 2) return `invalid version string: ${version}`;
  const [majorText, minorText] = parts as [string, string];
  if (!/^\d+$/.test(majorText)) return `invalid major version: ${version}`;
  if (!/^\d+$/.test(minorText)) return `invalid minor version: ${version}`;
  const major = Number(majorText);
  const minor = Number(minorText);
  if (major > CURRENT_API_MAJOR) {
    return `server is at version ${serverVersion}, behind requested major version ${version}`;
  }
  if (major < CURRENT_API_MAJOR) return `version ${version} is no longer supported`;
  if (minor > serverMinor) {
    return `server is at version ${serverVersion}, behind requested minor version ${version}`;
  }
  return undefined;
}
