import { randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import type { RefreshResumeTokenResponseSchema } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import type { Queryable } from "../db/database.js";
import { getOrCreateResumeTokenKey } from "../db/queries/tailnet.js";

/** How long a resume token is valid: Coder's default. Clients are told to refresh halfway. */
export const RESUME_TOKEN_EXPIRY_MS = 24 * 60 * 60 * 1000;
/** HMAC-SHA256 key size: the hash's block output, as RFC 7518 asks for HS256. */
const KEY_BYTES = 32;
const ALGORITHM = "HS256";

/** A resume token that is malformed, signed with another key, or expired. */
export class ResumeTokenError extends Error {
  override name = "ResumeTokenError";
}

/**
 * Resume tokens: a client that reconnects with one keeps its peer id, and so its tunnels. A token
 * is a JWT (HS256) whose subject is the peer id, signed with a key kept in the database so that
 * every replica verifies what any replica issued.
 */
export class ResumeTokens {
  private key: Promise<Uint8Array> | undefined;

  /** `key` itself, or where to get it on first use (a failed fetch is tried again next time). */
  constructor(
    private readonly source: Uint8Array | (() => Promise<Uint8Array>),
    private readonly expiryMs = RESUME_TOKEN_EXPIRY_MS,
  ) {}

  /**
   * The tokens of the key every replica of `db` shares, made by whichever replica needs it first.
   * Read on first use, so a server starts before its database is migrated.
   */
  static fromDatabase(db: Queryable, expiryMs?: number): ResumeTokens {
    return new ResumeTokens(() => getOrCreateResumeTokenKey(db, randomBytes(KEY_BYTES)), expiryMs);
  }

  /** A token for `peerId`, with when to refresh it and when it expires (RefreshResumeToken's answer). */
  async issue(peerId: string): Promise<MessageInitShape<typeof RefreshResumeTokenResponseSchema>> {
    const now = Date.now();
    const expiresAt = now + this.expiryMs;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: ALGORITHM })
      .setSubject(peerId)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(expiresAt / 1000))
      .sign(await this.signingKey());
    return { token, refreshIn: durationFromMs(this.expiryMs / 2), expiresAt: timestampFromMs(expiresAt) };
  }

  /** The peer id a valid token carries; throws {@link ResumeTokenError} saying what is wrong. */
  async verify(token: string): Promise<string> {
    const key = await this.signingKey();
    let subject: string | undefined;
    try {
      subject = (await jwtVerify(token, key, { algorithms: [ALGORITHM] })).payload.sub;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new ResumeTokenError("resume token expired");
      throw new ResumeTokenError("invalid resume token", { cause: err });
    }
    // The signature vouches for the subject: only this server's key wrote it.
    if (subject === undefined) throw new ResumeTokenError("invalid resume token: no peer id");
    return subject;
  }

  private signingKey(): Promise<Uint8Array> {
    const { source } = this;
    if (typeof source !== "function") return Promise.resolve(source);
    this.key ??= source().catch((err: unknown) => {
      this.key = undefined;
      throw err;
    });
    return this.key;
  }
}
