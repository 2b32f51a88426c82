import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Startup_Subsystem, StartupSchema, type Startup, type UpdateStartupRequest } from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentSubsystem } from "../db/enums.js";
import { internal, invalid, type LoadCaller } from "./caller.js";

/** What UpdateStartup needs (agent-api.md §2.6). */
export interface StartupDeps {
  loadCaller: LoadCaller;
  updateStartup(p: { id: string; version: string; expandedDirectory: string; subsystems: AgentSubsystem[]; apiVersion: string }): Promise<void>;
}

const SUBSYSTEMS: Partial<Record<Startup_Subsystem, AgentSubsystem>> = {
  [Startup_Subsystem.ENVBOX]: "envbox",
  [Startup_Subsystem.ENVBUILDER]: "envbuilder",
  [Startup_Subsystem.EXECTRACE]: "exectrace",
};

/**
 * Go's `semver.IsValid` (golang.org/x/mod): a leading `v`, then major, optionally minor and patch
 * (`v1`, `v1.2` are valid shorthands), with prerelease and build only after a full version.
 */
const GO_SEMVER = /^v(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?)?)?$/;

/** UpdateStartup: version, expanded directory, subsystems and the negotiated API version; no event. */
export function startupApi(deps: StartupDeps) {
  return {
    async updateStartup(req: UpdateStartupRequest, ctx: HandlerContext): Promise<Startup> {
      const { identity, agent } = await deps.loadCaller(ctx);
      const startup = req.startup ?? create(StartupSchema);
      if (!GO_SEMVER.test(startup.version)) throw invalid(`invalid agent semver version "${startup.version}"`);
      const subsystems = new Set<AgentSubsystem>();
      for (const s of startup.subsystems) {
        const name = SUBSYSTEMS[s];
        if (name === undefined) throw invalid(`invalid agent subsystem ${Startup_Subsystem[s] ?? s}`);
        subsystems.add(name);
      }
      try {
        await deps.updateStartup({
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
