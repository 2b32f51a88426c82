import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AppSpec_OpenIn, AppSpec_OpenInSchema } from "../../gen/agentgate/control/v1/control_pb.js";
import { CreateSubAgentRequest_App_OpenIn, CreateSubAgentRequest_App_OpenInSchema, WorkspaceApp_Health, WorkspaceApp_HealthSchema } from "../../gen/coder/agent/v2/agent_pb.js";
import { APP_HEALTHS, APP_OPEN_IN } from "../../src/db/enums.js";
import { enumMapping } from "../../src/protocol/enum-mapping.js";

describe("enumMapping", () => {
  it("maps every database value to the proto value of the same name and back", () => {
    const health = enumMapping(WorkspaceApp_HealthSchema, APP_HEALTHS);
    assert.deepEqual(APP_HEALTHS.map((h) => health.toProto(h)), [WorkspaceApp_Health.DISABLED, WorkspaceApp_Health.INITIALIZING, WorkspaceApp_Health.HEALTHY, WorkspaceApp_Health.UNHEALTHY]);
    for (const h of APP_HEALTHS) assert.equal(health.toDb(health.toProto(h)!), h);
  });

  it("matches a hyphenated database value to its underscored proto name, with or without the enum's shared prefix", () => {
    const prefixed = enumMapping(AppSpec_OpenInSchema, APP_OPEN_IN);
    assert.deepEqual([prefixed.toProto("slim-window"), prefixed.toProto("window"), prefixed.toProto("tab")], [AppSpec_OpenIn.SLIM_WINDOW, AppSpec_OpenIn.WINDOW, AppSpec_OpenIn.TAB]);
    assert.equal(prefixed.toDb(AppSpec_OpenIn.SLIM_WINDOW), "slim-window");
  });

  it("gives nothing for UNSPECIFIED, for a number outside the enum, and for a value only one side has", () => {
    const health = enumMapping(WorkspaceApp_HealthSchema, APP_HEALTHS);
    assert.equal(health.toDb(WorkspaceApp_Health.HEALTH_UNSPECIFIED), undefined);
    assert.equal(health.toDb(99 as WorkspaceApp_Health), undefined);
    const openIn = enumMapping(CreateSubAgentRequest_App_OpenInSchema, APP_OPEN_IN);
    assert.equal(openIn.toProto("window"), undefined, "the sub-agent proto has no WINDOW");
    assert.equal(openIn.toDb(CreateSubAgentRequest_App_OpenIn.TAB), "tab");
  });
});
