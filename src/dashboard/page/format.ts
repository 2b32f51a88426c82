import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AgentStatus, AppHealth, LifecycleState, LogLevel } from "../../../gen/agentgate/control/v1/control_pb.js";

/** An enum value as the CLI prints it: lower case, e.g. `shutting_down`. */
function enumLabel(table: Record<number, string>, value: number): string {
  return (table[value] ?? "unspecified").toLowerCase();
}

export const statusLabel = (s: AgentStatus) => enumLabel(AgentStatus, s);
export const lifecycleLabel = (s: LifecycleState) => enumLabel(LifecycleState, s);
export const healthLabel = (h: AppHealth) => enumLabel(AppHealth, h);
export const levelLabel = (l: LogLevel) => enumLabel(LogLevel, l);

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function ago(at: Timestamp | undefined, now = Date.now()): string {
  if (at === undefined) return "never";
  const s = Math.max(0, Math.round((now - timestampDate(at).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** ISO time, for titles and log lines. */
export function iso(at: Timestamp | undefined): string {
  return at === undefined ? "" : timestampDate(at).toISOString();
}

/** A rate with two significant digits at most, e.g. "0.42/s", "17/s", "1.2k/s". */
export function rate(perSecond: number): string {
  if (perSecond >= 1000) return `${(perSecond / 1000).toPrecision(2)}k/s`;
  if (perSecond >= 10) return `${Math.round(perSecond)}/s`;
  return `${Number(perSecond.toPrecision(2))}/s`;
}

/** A replica id, short: the first block of the UUID. */
export function shortId(id: string): string {
  return id.split("-", 1)[0] ?? id;
}
