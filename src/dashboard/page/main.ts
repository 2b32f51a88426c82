import type { AgentSummary } from "../../../gen/agentgate/control/v1/control_pb.js";
import { AgentStatus } from "../../../gen/agentgate/control/v1/control_pb.js";
import { openAgentDetail } from "./agent-detail.js";
import { controlClient, errorText, isRefusedToken, type Control } from "./control-client.js";
import { byId } from "./dom.js";
import { renderFleet } from "./fleet-table.js";
import { liveStream } from "./live-stream.js";
import { keepTimesCurrent } from "./relative-times.js";
import { showServerFigures } from "./server-figures.js";
import { forgetToken, storedToken, storeToken } from "./session-token.js";

/**
 * The dashboard: sign in with the admin token, then the fleet (every owner's agents, live through
 * WatchAgents), the server's figures, and an agent's detail on click.
 */

/** What runs while signed in; stopped at sign-out. */
interface Session {
  control: Control;
  stops: { stop(): void }[];
  detail?: { stop(): void } | undefined;
  agents: AgentSummary[];
  thisReplica?: string | undefined;
  selected?: string | undefined;
}

let session: Session | undefined;

function signedIn(token: string): void {
  const control = controlClient(token);
  const s: Session = { control, stops: [], agents: [] };
  session = s;
  byId("sign-in").hidden = true;
  byId("fleet").hidden = false;
  byId("sign-out").hidden = false;
  const live = byId("live");
  const figures = showServerFigures(control, {
    onReplica: (id) => {
      if (s.thisReplica !== id) {
        s.thisReplica = id;
        redraw(s);
      }
    },
    onRefused: signOutRefused,
  });
  s.stops.push(
    figures,
    liveStream({
      open: (signal) => control.watchAgents({}, { signal }),
      onMessage: (m) => {
        s.agents = m.agents;
        redraw(s);
        figures.refresh();
      },
      onState: (state, err) => {
        live.className = `pill ${state}`;
        live.textContent = state === "live" ? "live" : "reconnecting…";
        live.title = err === undefined ? "updates as agents change" : errorText(err);
      },
      onStopped: signOutRefused,
    }),
  );
}

function redraw(s: Session): void {
  renderFleet(byId<HTMLTableSectionElement>("agents"), s.agents, {
    thisReplica: s.thisReplica,
    selected: s.selected,
    onOpen: (agent) => openDetail(s, agent),
  });
  const connected = s.agents.filter((a) => a.status === AgentStatus.CONNECTED).length;
  const workspaces = new Set(s.agents.map((a) => a.workspaceId)).size;
  byId("fleet-count").textContent = `${workspaces} workspace${workspaces === 1 ? "" : "s"}, ${s.agents.length} agent${s.agents.length === 1 ? "" : "s"}, ${connected} connected`;
  byId("empty").hidden = s.agents.length > 0;
}

function openDetail(s: Session, agent: AgentSummary): void {
  s.detail?.stop();
  s.selected = agent.agentId;
  s.detail = openAgentDetail(byId("detail"), s.control, agent, { onClose: () => closeDetail(s), onRefused: signOutRefused });
  redraw(s);
}

function closeDetail(s: Session): void {
  s.detail?.stop();
  s.detail = undefined;
  s.selected = undefined;
  byId("detail").hidden = true;
  redraw(s);
}

function signOut(message = ""): void {
  if (session !== undefined) {
    for (const x of session.stops) x.stop();
    closeDetail(session);
    session = undefined;
  }
  forgetToken();
  byId("fleet").hidden = true;
  byId("sign-out").hidden = true;
  byId("sign-in").hidden = false;
  byId("sign-in-error").textContent = message;
  byId<HTMLInputElement>("token").focus();
}

function signOutRefused(err: unknown): void {
  signOut(refusedMessage(err));
}

function refusedMessage(err: unknown): string {
  return isRefusedToken(err) ? `The server refused this admin token: ${err.rawMessage}.` : errorText(err);
}

/** Checks the token with one call before keeping it, so a wrong one is told at once. */
async function trySignIn(token: string): Promise<void> {
  const error = byId("sign-in-error");
  const button = byId<HTMLButtonElement>("sign-in-button");
  error.textContent = "";
  button.disabled = true;
  try {
    await controlClient(token).getServerStats({});
    storeToken(token);
    signedIn(token);
  } catch (err) {
    error.textContent = isRefusedToken(err) ? refusedMessage(err) : `Could not reach the server: ${errorText(err)}`;
  } finally {
    button.disabled = false;
  }
}

byId<HTMLFormElement>("sign-in-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = byId<HTMLInputElement>("token");
  const token = input.value.trim();
  input.value = "";
  if (token === "") byId("sign-in-error").textContent = "Paste the admin token first.";
  else void trySignIn(token);
});
byId("sign-out").addEventListener("click", () => signOut());
keepTimesCurrent();
const token = storedToken();
if (token === undefined) signOut();
else signedIn(token);
