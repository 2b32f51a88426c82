import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Lifecycle_State, Lifecycle_StateSchema, LifecycleSchema, type Lifecycle, type UpdateLifecycleRequest } from "../../gen/coder/agent/v2/agent_pb.js";
import { LIFECYCLE_STATES, type LifecycleState } from "../db/enums.js";
import { updateAgentLifecycle } from "../db/queries/agents.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiContext } from "./context.js";
import { internal, invalid } from "./rpc-errors.js";

const STATES = enumMapping(Lifecycle_StateSchema, LIFECYCLE_STATES);

/** States that end the start phase and so set ready_at, as newer coderd releases do for all three. */
const START_FINISHED: ReadonlySet<LifecycleState> = new Set(["ready", "start_timeout", "start_error"]);

/** Go's zero time (0001-01-01T00:00:00Z) as Unix seconds: the agent's way of saying "use your clock". */
const GO_ZERO_TIME_SECONDS = -62_135_596_800n;

/** UpdateLifecycle: stores the state with started_at/ready_at, and publishes `agt_lifecycle_update`. */
export function lifecycleApi(api: AgentApiContext) {
  return {
    async updateLifecycle(req: UpdateLifecycleRequest, ctx: HandlerContext): Promise<Lifecycle> {
      const { identity, agent } = await api.loadCallerRow(ctx);
      const stateEnum = req.lifecycle?.state ?? Lifecycle_State.STATE_UNSPECIFIED;
      const state = STATES.toDb(stateEnum);
      if (state === undefined) throw invalid(`unknown lifecycle state ${Lifecycle_State[stateEnum] ?? stateEnum}`);
      // Coder turns an absent timestamp into 1970 and stores it; agentgate treats it like the zero time.
      let changedAt: Timestamp | undefined = req.lifecycle?.changedAt;
      if (changedAt === undefined || changedAt.seconds === GO_ZERO_TIME_SECONDS) changedAt = timestampFromDate(api.clock());
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
        await updateAgentLifecycle(api.db, { id: agent.id, lifecycleState: state, startedAt, readyAt });
      } catch (err) {
        throw internal("update workspace agent lifecycle state", err);
      }
      await api.publishWorkspaceEvent(identity.ownerId, { kind: "agt_lifecycle_update", workspace_id: identity.workspaceId, agent_id: agent.id });
      return create(LifecycleSchema, { state: stateEnum, changedAt });
    },
  };
}
