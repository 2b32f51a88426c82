import { createHash, randomBytes } from "node:crypto";
import type { Queryable } from "../db/database.js";
import { authenticateClientToken, type ClientTokenGrant } from "../db/queries/client-tokens.js";

/** 256 bits, URL-safe: as strong as the HMAC keys around it, short enough to paste. */
const CLIENT_TOKEN_BYTES = 32;

/** A fresh client token. */
export function newClientToken(): string {
  return randomBytes(CLIENT_TOKEN_BYTES).toString("base64url");
}

/** What is stored of a client token: its SHA-256 (the token is random, so no salt is needed). */
export function hashClientToken(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/**
 * The grant of a client token that is usable now (not expired, not revoked, its workspace and
 * agent not deleted); with `agentId`, only if it reaches that agent. Undefined otherwise.
 */
export function authenticateClient(q: Queryable, token: string, agentId?: string): Promise<ClientTokenGrant | undefined> {
  return authenticateClientToken(q, hashClientToken(token), new Date(), agentId);
}
