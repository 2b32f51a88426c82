import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Lifecycle_State, LifecycleSchema, type Lifecycle, type UpdateLifecycleRequest } from "../../gen/coder/agent/v2/agent_pb.js";
import type { LifecycleState } from "../db/enums.js";
import { internal, invalid, type LoadCaller } from "./caller.js";
import type { Clock, PublishWorkspaceEventFn } from "./publish.js";

/** What UpdateLifecycle needs (agent-api.md §2.4). */
export interface LifecycleDeps {
  loadCaller: LoadCaller;
  updateLifecycle(p: { id: string; lifecycleState: LifecycleState; startedAt: Date | null; readyAt: Date | null }): Promise<void>;
  publishWorkspaceEvent: PublishWorkspaceEventFn;
  now: Clock;
}

const STATES: Partial<Record<Lifecycle_State, LifecycleState>> = {
  [Lifecycle_State.CREATED]: "created",
  [Lifecycle_State.STARTING]: "starting",
  [Lifecycle_State.START_TIMEOUT]: "start_timeout",
  [Lifecycle_State.START_ERROR]: "start_error",
  [Lifecycle_State.READY]: "ready",
  [Lifecycle_State.SHUTTING_DOWN]: "shutting_down",
  [Lifecycle_State.SHUTDOWN_TIMEOUT]: "shutdown_timeout",
  [Lifecycle_State.SHUTDOWN_ERROR]: "shutdown_error",
  [Lifecycle_State.OFF]: "off",
};

/** States that end the start phase and so set ready_at ([NEW], contract C12). */
const START_FINISHED: ReadonlySet<LifecycleState> = new Set(["ready", "start_timeout", "start_error"]);

/** Go's zero time (0001-01-01T00:00:00Z) as Unix seconds: the agent's way of saying "use your clock". */
const GO_ZERO_TIME_SECONDS = -62_135_596_800n;

/** UpdateLifecycle: stores the state with started_at/ready_at, and publishes `agt_lifecycle_update`. */
export function lifecycleApi(deps: LifecycleDeps) {
  return {
    async updateLifecycle(req: UpdateLifecycleRequest, ctx: HandlerContext): Promise<Lifecycle> {
      const { identity, agent } = await deps.loadCaller(ctx);
      const stateEnum = req.lifecycle?.state ?? Lifecycle_State.STATE_UNSPECIFIED;
      const state = STATES[stateEnum];
      if (state === undefined) throw invalid(`unknown lifecycle state ${Lifecycle_State[stateEnum] ?? stateEnum}`);
      // Coder turns an absent timestamp into 1970 and stores it; agentgate treats it like the zero time.
      let changedAt: Timestamp | undefined = req.lifecycle?.changedAt;
      if (changedAt === undefined || changedAt.seconds === GO_ZERO_TIME_SECONDS) changedAt = timestampFromDate(deps.now());
      const at = timestampDate(changedAt);
      let { startedAt, readyAt } = agent;
      if (state === "starting") {
        startedAt = at;
        readyAt = null;
      } else if (START_FINISHED.has(state)) {
        readyAt = at;
        startedAt ??= at;
      }
      try {
        await deps.updateLifecycle({ id: agent.id, lifecycleState: state, startedAt, readyAt });
      } catch (err) {
        throw internal("update workspace agent lifecycle state", err);
      }
      await deps.publishWorkspaceEvent(identity.ownerId, { kind: "agt_lifecycle_update", workspace_id: identity.workspaceId, agent_id: agent.id });
      return create(LifecycleSchema, { state: stateEnum, changedAt });
    },
  };
}
