import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { MethodDescriptorProto } from "@bufbuild/protobuf/wkt";
import { services } from "./wire-contract.js";

const run = promisify(execFile);

/** What other languages' clients read: the descriptor set `buf build` writes from proto/. */
test("buf build writes a descriptor set with the Agent and Tailnet services of the contract", async () => {
  const dir = await mkdtemp(join(tmpdir(), "agentgate-buf-"));
  try {
    const out = join(dir, "agent.binpb");
    await run("npx", ["--no-install", "buf", "build", "-o", out]);
    const set = fromBinary(FileDescriptorSetSchema, await readFile(out));
    const found = new Map<string, MethodDescriptorProto[]>();
    for (const file of set.file) {
      for (const service of file.service) found.set(`${file.package}.${service.name}`, service.method);
    }
    for (const name of ["coder.agent.v2.Agent", "coder.tailnet.v2.Tailnet"]) {
      const want = services[name]!.map((line) => line.split(" ")[0]);
      assert.deepEqual(found.get(name)?.map((m) => m.name), want, name);
    }
    const coordinate = found.get("coder.tailnet.v2.Tailnet")!.find((m) => m.name === "Coordinate")!;
    assert.equal(coordinate.clientStreaming && coordinate.serverStreaming, true, "Coordinate is bidi");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
