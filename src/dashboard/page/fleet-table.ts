import type { AgentSummary } from "../../../gen/agentgate/control/v1/control_pb.js";
import { AgentStatus } from "../../../gen/agentgate/control/v1/control_pb.js";
import { h } from "./dom.js";
import { iso, lifecycleLabel, shortId, statusLabel } from "./format.js";
import { agoElement } from "./relative-times.js";

/** What the fleet table shows besides the agents. */
export interface FleetView {
  /** The replica the page talks to, marked "this server". */
  thisReplica?: string | undefined;
  /** The agent whose detail is open, highlighted. */
  selected?: string | undefined;
  onOpen(agent: AgentSummary): void;
}

/**
 * Renders the agents (ordered by owner, workspace and agent, as the server sends them) into
 * `tbody`: a heading row per workspace with its build, then a row per agent.
 */
export function renderFleet(tbody: HTMLTableSectionElement, agents: AgentSummary[], view: FleetView): void {
  const rows: HTMLTableRowElement[] = [];
  let workspace: string | undefined;
  for (const a of agents) {
    if (a.workspaceId !== workspace) {
      workspace = a.workspaceId;
      rows.push(h("tr", { class: "workspace" }, h("th", { colspan: "6", scope: "rowgroup" }, `${a.owner}/${a.workspaceName}`, h("span", { class: "build" }, `build ${a.buildNumber}`))));
    }
    const status = statusLabel(a.status);
    const connected = a.status === AgentStatus.CONNECTED;
    const row = h(
      "tr",
      { class: a.agentId === view.selected ? "agent selected" : "agent", "data-agent-id": a.agentId, "data-status": status },
      h("td", {}, h("button", { class: "open", type: "button", title: "Show metadata, apps and logs" }, a.agentName)),
      h("td", {}, h("span", { class: `badge status-${status}` }, status)),
      h("td", {}, h("span", { class: `badge lifecycle-${lifecycleLabel(a.lifecycleState)}` }, lifecycleLabel(a.lifecycleState))),
      // A connected agent's time is refreshed by its heartbeats; the list is only resent on changes.
      h("td", {}, connected ? h("time", { datetime: iso(a.lastConnectedAt), title: iso(a.lastConnectedAt) }, "now") : agoElement(a.lastConnectedAt)),
      h("td", { class: "mono" }, a.version || "—"),
      h("td", { class: "mono", title: a.replicaId }, a.replicaId === "" ? "—" : shortId(a.replicaId), a.replicaId !== "" && a.replicaId === view.thisReplica ? h("span", { class: "this" }, " this server") : null),
    );
    row.addEventListener("click", () => view.onOpen(a));
    rows.push(row);
  }
  tbody.replaceChildren(...rows);
}
