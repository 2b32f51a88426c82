import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { bearerToken } from "../auth/token.js";

/**
 * Checks a control call's `Authorization: Bearer <token>` against the operator's admin token.
 * Throws Unauthenticated when the header is missing or the token differs, and for every call
 * when the server has no admin token (nothing can prove to be the operator then). Agent tokens
 * are never looked up here, so they are refused like any other wrong token.
 */
export function requireAdminToken(header: Headers, adminToken: string | undefined): void {
  if (adminToken === undefined || adminToken === "") {
    throw new ConnectError("control API disabled: the server has no admin token", Code.Unauthenticated);
  }
  const presented = bearerToken(header.get("authorization"));
  if (presented === undefined) throw new ConnectError("admin token required (Authorization: Bearer <token>)", Code.Unauthenticated);
  if (!sameToken(presented, adminToken)) throw new ConnectError("invalid admin token", Code.Unauthenticated);
}

/**
 * Compares two secrets in time independent of where they differ. Both are hashed first because
 * `timingSafeEqual` needs equal lengths, and comparing lengths directly would leak the length.
 */
export function sameToken(a: string, b: string): boolean {
  return timingSafeEqual(createHash("sha256").update(a).digest(), createHash("sha256").update(b).digest());
}

/** 256 bits: as strong as the HMAC keys it stands in for, and short enough to paste. */
const GENERATED_TOKEN_BYTES = 32;

/** A fresh random admin token, URL-safe, for a server started without one. */
export function generateAdminToken(): string {
  return randomBytes(GENERATED_TOKEN_BYTES).toString("base64url");
}
