import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create, fromBinary, fromJson, toBinary, toJson, type DescFile } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  file_coder_agent_v2_agent,
  BatchUpdateMetadataRequestSchema,
  ManifestSchema,
  StatsSchema,
  WorkspaceApp_SharingLevel,
  Stats_Metric_Type,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { CoordinateRequestSchema, file_coder_tailnet_v2_tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { describeEnum, describeMessage, describeService } from "./describe.js";
import { enums, messages, services } from "./wire-contract.js";

const files: DescFile[] = [file_coder_agent_v2_agent, file_coder_tailnet_v2_tailnet];

function generated() {
  const out = { services: new Map<string, string[]>(), messages: new Map<string, string[]>(), enums: new Map<string, string[]>() };
  for (const file of files) {
    for (const s of file.services) out.services.set(s.typeName, describeService(s));
    for (const t of nestedTypes(file)) {
      if (t.kind === "message" && t.proto.options?.mapEntry !== true) out.messages.set(t.typeName, describeMessage(t));
      if (t.kind === "enum") out.enums.set(t.typeName, describeEnum(t));
    }
  }
  return out;
}

describe("wire contract: the generated Agent and Tailnet descriptors match the table of what Coder's agents send", () => {
  const gen = generated();

  test("the packages are coder.agent.v2 and coder.tailnet.v2", () => {
    assert.deepEqual(
      files.map((f) => f.proto.package),
      ["coder.agent.v2", "coder.tailnet.v2"],
    );
  });

  test("every service has exactly the contract's methods, kinds and message types", () => {
    assert.deepEqual([...gen.services.keys()].sort(), Object.keys(services).sort());
    for (const [name, methods] of Object.entries(services)) {
      assert.deepEqual(gen.services.get(name), methods, `service ${name}`);
    }
  });

  test("Coordinate is a bidi stream and StreamDERPMaps a server stream", () => {
    const tailnet = file_coder_tailnet_v2_tailnet.services.find((s) => s.name === "Tailnet");
    assert.equal(tailnet?.methods.find((m) => m.name === "Coordinate")?.methodKind, "bidi_streaming");
    assert.equal(tailnet?.methods.find((m) => m.name === "StreamDERPMaps")?.methodKind, "server_streaming");
  });

  test("every message has exactly the contract's field names, numbers and types", () => {
    assert.deepEqual([...gen.messages.keys()].sort(), Object.keys(messages).sort());
    for (const [name, fields] of Object.entries(messages)) {
      assert.deepEqual(gen.messages.get(name), fields, `message ${name}`);
    }
  });

  test("every enum has exactly the contract's value names and numbers", () => {
    assert.deepEqual([...gen.enums.keys()].sort(), Object.keys(enums).sort());
    for (const [name, values] of Object.entries(enums)) {
      assert.deepEqual(gen.enums.get(name), values, `enum ${name}`);
    }
  });
});

describe("sample messages round-trip", () => {
  const agentId = new Uint8Array(16).fill(7);

  test("a Manifest survives binary and JSON", () => {
    const manifest = create(ManifestSchema, {
      agentId,
      agentName: "main",
      ownerUsername: "alice",
      workspaceId: new Uint8Array(16).fill(9),
      workspaceName: "dev",
      environmentVariables: { EDITOR: "vim" },
      directory: "/home/alice",
      parentId: new Uint8Array(16).fill(1),
      apps: [
        {
          slug: "code",
          sharingLevel: WorkspaceApp_SharingLevel.AUTHENTICATED,
          healthcheck: { url: "http://localhost:8080/healthz", interval: { seconds: 5n }, threshold: 3 },
        },
      ],
      scripts: [{ script: "x".repeat(512_000), runOnStart: true, timeout: { seconds: 60n } }],
      metadata: [{ key: "cpu", interval: { nanos: 10 }, timeout: { nanos: 3 } }],
      derpMap: { regions: { 1: { regionId: 1n, regionCode: "home", nodes: [{ name: "1a", stunPort: -1 }] } } },
    });
    const fromBin = fromBinary(ManifestSchema, toBinary(ManifestSchema, manifest));
    assert.deepEqual(fromBin, manifest);
    const json = toJson(ManifestSchema, manifest);
    assert.equal((json as { apps: { sharingLevel: string }[] }).apps[0]!.sharingLevel, "AUTHENTICATED");
    assert.deepEqual(fromJson(ManifestSchema, json), manifest);
  });

  test("Stats survives binary and JSON, maps and metrics included", () => {
    const stats = create(StatsSchema, {
      connectionsByProto: { ssh: 2n, vscode: 1n },
      connectionCount: 3n,
      connectionMedianLatencyMs: 12.5,
      rxBytes: 1n << 40n,
      metrics: [{ name: "cpu", type: Stats_Metric_Type.GAUGE, value: 0.5, labels: [{ name: "core", value: "0" }] }],
      sessionCounts: { vscode: 1n },
    });
    assert.deepEqual(fromBinary(StatsSchema, toBinary(StatsSchema, stats)), stats);
    assert.deepEqual(fromJson(StatsSchema, toJson(StatsSchema, stats)), stats);
  });

  test("a CoordinateRequest survives binary and JSON", () => {
    const request = create(CoordinateRequestSchema, {
      updateSelf: {
        node: {
          id: 42n,
          asOf: timestampFromDate(new Date("2026-01-02T03:04:05Z")),
          key: new Uint8Array([1, 2, 3]),
          preferredDerp: 1,
          derpLatency: { "1-v4": 0.012 },
          addresses: ["fd7a:115c:a1e0::1/128"],
        },
      },
      readyForHandshake: [{ id: agentId }],
    });
    assert.deepEqual(fromBinary(CoordinateRequestSchema, toBinary(CoordinateRequestSchema, request)), request);
    assert.deepEqual(fromJson(CoordinateRequestSchema, toJson(CoordinateRequestSchema, request)), request);
  });

  test("BatchUpdateMetadataRequest.metadata is field 2 on the wire", () => {
    // Tag 2, wire type 2 (length-delimited) = 0x12: the one quirk the contract calls out.
    const bytes = toBinary(BatchUpdateMetadataRequestSchema, create(BatchUpdateMetadataRequestSchema, { metadata: [{ key: "k" }] }));
    assert.equal(bytes[0], 0x12);
  });
});
