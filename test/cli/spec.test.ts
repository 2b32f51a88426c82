import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseWorkspaceSpec, SpecError } from "../../src/provision/spec.js";

describe("parseWorkspaceSpec", () => {
  it("fills every default for an agent given only a name", () => {
    const { agents } = parseWorkspaceSpec({ agents: [{ name: "main" }] });
    assert.deepEqual(agents[0], {
      name: "main", os: "linux", architecture: "amd64", directory: "", env: {}, connection_timeout_seconds: 0, troubleshooting_url: "", motd_file: "",
      display_apps: ["vscode", "vscode_insiders", "web_terminal", "ssh_helper", "port_forwarding_helper"],
      apps: [], scripts: [], metadata: [], devcontainers: [], resource_monitors: { volumes: [] },
    });
    assert.deepEqual([agents[0]!.os, agents[0]!.architecture, agents[0]!.connection_timeout_seconds, agents[0]!.display_apps.length], ["linux", "amd64", 0, 5]);
  });

  for (const [why, spec, message] of [
    ["a non-object root", [], /^spec: want an object/],
    ["a bad agent name", { agents: [{ name: "-x" }] }, /^agents\[0\]\.name: "-x" must be/],
    ["an unknown field", { agents: [{ name: "a", dirctory: "/" }] }, /^agents\[0\]\.dirctory: unknown field/],
    ["a duplicate agent name", { agents: [{ name: "a" }, { name: "a" }] }, /agent name "a" is used twice/],
    ["a duplicate app slug", { agents: [{ name: "a", apps: [{ slug: "x" }, { slug: "x" }] }] }, /agents\[0\]\.apps\[1\]\.slug: "x" is used twice/],
    ["an upper-case slug", { agents: [{ name: "a", apps: [{ slug: "X" }] }] }, /apps\[0\]\.slug/],
    ["an unknown sharing level", { agents: [{ name: "a", apps: [{ slug: "x", sharing_level: "world" }] }] }, /sharing_level: want one of owner, authenticated, organization, public/],
    ["a negative timeout", { agents: [{ name: "a", connection_timeout_seconds: -1 }] }, /connection_timeout_seconds: want a non-negative integer/],
    ["a threshold over 100", { agents: [{ name: "a", resource_monitors: { memory: { threshold: 101 } } }] }, /memory\.threshold: want a percentage/],
    ["a script without a script", { agents: [{ name: "a", scripts: [{ display_name: "s" }] }] }, /scripts\[0\]\.script: want a string/],
  ] as const) {
    it(`refuses ${why}, naming the field`, () => {
      assert.throws(() => parseWorkspaceSpec(spec), (err) => err instanceof SpecError && message.test(err.message));
    });
  }
});
