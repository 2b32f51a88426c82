import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Startup_Subsystem, Startup_SubsystemSchema, StartupSchema, type Startup, type UpdateStartupRequest } from "../../gen/coder/agent/v2/agent_pb.js";
import { AGENT_SUBSYSTEMS, type AgentSubsystem } from "../db/enums.js";
import { updateAgentStartup } from "../db/queries/agents.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiContext } from "./context.js";
import { internal, invalid } from "./rpc-errors.js";

const SUBSYSTEMS = enumMapping(Startup_SubsystemSchema, AGENT_SUBSYSTEMS);

/**
 * Go's `semver.IsValid` (golang.org/x/mod): a leading `v`, then major, optionally minor and patch
 * (`v1`, `v1.2` are valid shorthands), with prerelease and build only after a full version.
 */
const GO_SEMVER = /^v(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?)?)?$/;

/** UpdateStartup: version, expanded directory, subsystems and the negotiated API version; no event. */
export function startupApi(api: AgentApiContext) {
  return {
    async updateStartup(req: UpdateStartupRequest, ctx: HandlerContext): Promise<Startup> {
      const { identity, agent } = await api.loadCaller(ctx);
      const startup = req.startup ?? create(StartupSchema);
      if (!GO_SEMVER.test(startup.version)) throw invalid(`invalid agent semver version "${startup.version}"`);
      const subsystems = new Set<AgentSubsystem>();
      for (const s of startup.subsystems) {
        const name = SUBSYSTEMS.toDb(s);
        if (name === undefined) throw invalid(`invalid agent subsystem ${Startup_Subsystem[s] ?? s}`);
        subsystems.add(name);
      }
      try {
        await updateAgentStartup(api.db, {
          id: agent.id,
          version: startup.version,
          expandedDirectory: startup.expandedDirectory,
          // Sorted by their database names, as Coder stores them: envbox < envbuilder < exectrace.
          subsystems: [...subsystems].sort(),
          apiVersion: identity.apiVersion,
        });
      } catch (err) {
        throw internal("update workspace agent startup", err);
      }
      return startup;
    },
  };
}
