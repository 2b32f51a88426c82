import assert from "node:assert/strict";
import { ConnectError } from "@connectrpc/connect";

/** Resolves to the ConnectError `p` rejects with; fails the test when `p` resolves. */
export async function connectErrorOf(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  assert.fail("expected the call to fail");
}
