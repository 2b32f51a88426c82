import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { GetServerStatsResponse, ServerStatsSample } from "../../../gen/agentgate/control/v1/control_pb.js";
import { errorText, isRefusedToken, type Control } from "./control-client.js";
import { byId, h } from "./dom.js";
import { drawPlot } from "./line-plot.js";
import { rate, shortId } from "./format.js";

/** The span the plots cover: what the server keeps. */
const PLOT_SPAN_MS = 60 * 60 * 1000;
/** Re-read no more often than this, whatever interval the server samples at. */
const MIN_REFRESH_MS = 1_000;
/** After a failed read, try again after this long. */
const RETRY_MS = 5_000;

/** What the figures tell the rest of the page. */
export interface FiguresHandlers {
  /** The replica the page talks to, once known. */
  onReplica(replicaId: string): void;
  onRefused(err: unknown): void;
}

/**
 * The server's own figures: the cards (connected agents, RPC rate, errors) and the two plots
 * (connected agents and RPC rate over the last hour), from GetServerStats. The server samples at
 * a fixed interval, so the page reads once per interval, when there is a new sample to show, and
 * at `refresh()`, which the page calls when the agents change (so the connected count follows).
 */
export function showServerFigures(control: Control, handlers: FiguresHandlers): { stop(): void; refresh(): void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let reading = false;
  let lastRead = 0;
  const refresh = async () => {
    clearTimeout(timer);
    reading = true;
    lastRead = Date.now();
    let next = RETRY_MS;
    try {
      const stats = await control.getServerStats({});
      if (stopped) return;
      handlers.onReplica(stats.replicaId);
      render(stats);
      next = Math.max(MIN_REFRESH_MS, stats.sampleIntervalSeconds * 1000);
    } catch (err) {
      if (stopped) return;
      if (isRefusedToken(err)) return handlers.onRefused(err);
      byId("figures-error").textContent = `Server figures unavailable: ${errorText(err)}`;
    } finally {
      reading = false;
    }
    timer = setTimeout(() => void refresh(), next);
  };
  void refresh();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
    refresh() {
      if (stopped || reading) return;
      clearTimeout(timer);
      // Many changes in a burst: one read, at most every MIN_REFRESH_MS.
      timer = setTimeout(() => void refresh(), Math.max(0, lastRead + MIN_REFRESH_MS - Date.now()));
    },
  };
}

function render(stats: GetServerStatsResponse): void {
  const current = stats.current;
  if (current === undefined) return;
  byId("figures-error").textContent = "";
  byId("figures").replaceChildren(
    card("Connected agents", String(current.connectedAgents), `on this replica (${shortId(stats.replicaId)})`, "figure-agents"),
    card("RPC rate", rate(current.rpcRate), `${current.rpcsTotal} since start`, "figure-rpcs"),
    card("Errors", rate(current.rpcErrorRate), `${current.rpcErrorsTotal} failed RPC${current.rpcErrorsTotal === 1n ? "" : "s"} since start`, current.rpcErrorRate > 0 ? "figure-errors bad" : "figure-errors"),
  );
  const samples = [...stats.samples, current];
  const now = timestampMs(current.at!);
  const points = (pick: (s: ServerStatsSample) => number) => samples.map((s): [number, number] => [timestampMs(s.at!), pick(s)]);
  drawPlot(byId<SVGSVGElement>("plot-agents"), [{ points: points((s) => s.connectedAgents), className: "agents", steps: true }], { now, spanMs: PLOT_SPAN_MS });
  drawPlot(
    byId<SVGSVGElement>("plot-rpcs"),
    [{ points: points((s) => s.rpcRate), className: "rpcs" }, { points: points((s) => s.rpcErrorRate), className: "errors" }],
    { now, spanMs: PLOT_SPAN_MS, unit: "/s" },
  );
}

function card(title: string, value: string, detail: string, className: string): HTMLElement {
  return h("div", { class: `card ${className}` }, h("div", { class: "card-title" }, title), h("div", { class: "card-value" }, value), h("div", { class: "card-detail" }, detail));
}
