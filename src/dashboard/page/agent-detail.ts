import type { AgentDetail, AgentSummary, GetWorkspaceAgentsResponse } from "../../../gen/agentgate/control/v1/control_pb.js";
import { errorText, isRefusedToken, type Control } from "./control-client.js";
import { h } from "./dom.js";
import { healthLabel, iso, levelLabel, lifecycleLabel, shortId, statusLabel } from "./format.js";
import { liveStream } from "./live-stream.js";
import { agoElement } from "./relative-times.js";

/** Log lines the detail shows: the tail a person reads; `agentgate status --logs` has more. */
export const DETAIL_LOG_LINES = 50;

/** What an open agent detail tells the page. */
export interface DetailHandlers {
  onClose(): void;
  onRefused(err: unknown): void;
}

/**
 * Opens `agent`'s detail in `panel`: its summary, metadata values, apps with health and last
 * log lines, kept current by WatchWorkspaceAgents (the server resends on each change).
 */
export function openAgentDetail(panel: HTMLElement, control: Control, agent: AgentSummary, handlers: DetailHandlers): { stop(): void } {
  const state = h("span", { class: "pill" }, "loading…");
  const body = h("div", { class: "detail-body" });
  const close = h("button", { class: "close", type: "button", title: "Close", "aria-label": "Close" }, "×");
  close.addEventListener("click", () => handlers.onClose());
  panel.replaceChildren(h("header", {}, h("h2", {}, `${agent.owner}/${agent.workspaceName} · ${agent.agentName}`), state, close), body);
  panel.hidden = false;
  panel.dataset.agentId = agent.agentId;
  const stream = liveStream({
    open: (signal) => control.watchWorkspaceAgents({ workspace: agent.workspaceId, logLimit: DETAIL_LOG_LINES }, { signal }),
    onMessage: (m) => {
      if (m.workspace !== undefined) body.replaceChildren(...renderDetail(m.workspace, agent.agentId));
    },
    onState: (s, err) => {
      state.className = `pill ${s}`;
      state.textContent = s === "live" ? "live" : "reconnecting…";
      state.title = err === undefined ? "" : errorText(err);
    },
    onStopped: (err) => {
      if (isRefusedToken(err)) return handlers.onRefused(err);
      state.className = "pill stopped";
      state.textContent = "gone";
      body.replaceChildren(h("p", { class: "error" }, errorText(err)));
    },
  });
  return { stop: () => stream.stop() };
}

function renderDetail(ws: GetWorkspaceAgentsResponse, agentId: string): Node[] {
  const detail = ws.agents.find((a) => a.summary?.agentId === agentId);
  if (detail?.summary === undefined) {
    return [h("p", { class: "notice" }, `This agent is not in the workspace's latest build (build ${ws.buildNumber}) any more.`)];
  }
  return [summaryList(detail.summary), metadataSection(detail), appsSection(detail), logsSection(detail)];
}

function summaryList(s: AgentSummary): HTMLElement {
  const item = (term: string, value: Node | string) => [h("dt", {}, term), h("dd", {}, value)];
  return h(
    "dl",
    { class: "summary" },
    ...item("Status", h("span", { class: `badge status-${statusLabel(s.status)}` }, statusLabel(s.status))),
    ...item("Lifecycle", h("span", { class: `badge lifecycle-${lifecycleLabel(s.lifecycleState)}` }, lifecycleLabel(s.lifecycleState))),
    ...item("Last connected", agoElement(s.lastConnectedAt)),
    ...item("Build", String(s.buildNumber)),
    ...item("Version", s.version || "—"),
    ...item("API version", s.apiVersion || "—"),
    ...item("Replica", h("span", { class: "mono", title: s.replicaId }, s.replicaId ? shortId(s.replicaId) : "—")),
  );
}

function metadataSection(d: AgentDetail): HTMLElement {
  return section(
    "Metadata",
    table("metadata", ["Item", "Value", "Collected"], d.metadata.map((m) => h(
      "tr",
      { "data-key": m.key },
      h("td", { title: m.key }, m.displayName || m.key),
      h("td", { class: m.error ? "mono error" : "mono" }, m.error || m.value),
      h("td", {}, agoElement(m.collectedAt)),
    ))),
    "No metadata items.",
  );
}

function appsSection(d: AgentDetail): HTMLElement {
  return section(
    "Apps",
    table("apps", ["App", "Health", "URL"], d.apps.map((a) => h(
      "tr",
      { "data-slug": a.slug },
      h("td", {}, a.displayName || a.slug),
      h("td", {}, h("span", { class: `badge health-${healthLabel(a.health)}` }, healthLabel(a.health))),
      h("td", { class: "mono" }, a.url ?? "command"),
    ))),
    "No apps.",
  );
}

/** A table with a header row, or undefined without rows (the section then says it is empty). */
function table(className: string, headings: string[], rows: HTMLTableRowElement[]): HTMLElement | undefined {
  if (rows.length === 0) return undefined;
  return h("table", { class: className }, h("thead", {}, h("tr", {}, ...headings.map((x) => h("th", {}, x)))), h("tbody", {}, ...rows));
}

function logsSection(d: AgentDetail): HTMLElement {
  const lines = d.logs.map((l) => h(
    "li",
    { class: `log level-${levelLabel(l.level)}` },
    h("time", { datetime: iso(l.createdAt) }, iso(l.createdAt).slice(11, 23)),
    h("span", { class: "level" }, levelLabel(l.level)),
    h("span", { class: "source" }, l.source),
    h("span", { class: "output" }, l.output),
  ));
  return section(
    `Logs (last ${DETAIL_LOG_LINES})`,
    lines.length === 0 ? undefined : h("ol", { class: "logs" }, ...lines),
    "No log lines yet.",
    d.logsOverflowed ? h("p", { class: "notice" }, "The agent sent more output than the server keeps; later lines were dropped.") : null,
  );
}

function section(title: string, content: HTMLElement | undefined, empty: string, after: Node | null = null): HTMLElement {
  return h("section", { class: `detail-${title.split(" ", 1)[0]!.toLowerCase()}` }, h("h3", {}, title), content ?? h("p", { class: "empty" }, empty), after);
}
