import type { IncomingHttpHeaders } from "node:http";
import { SESSION_TOKEN_COOKIE, SESSION_TOKEN_HEADER } from "../protocol/agent-rpc.js";

/** `Authorization: Bearer <token>`, any case, one token. */
const BEARER_PATTERN = /^Bearer\s+(\S+)\s*$/i;

/** The token of an `Authorization: Bearer <token>` header; undefined for anything else. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  return authorization?.match(BEARER_PATTERN)?.[1];
}

/**
 * Finds the agent token in a request as coderd does: cookie, then query parameter, then the
 * `Coder-Session-Token` header, then `Authorization: Bearer`. The first non-empty one wins; ""
 * when there is none.
 */
export function extractToken(headers: IncomingHttpHeaders, url: URL | undefined): string {
  const fromCookie = cookieValue(headers.cookie, SESSION_TOKEN_COOKIE);
  if (fromCookie) return fromCookie;
  const fromQuery = url?.searchParams.get(SESSION_TOKEN_COOKIE);
  if (fromQuery) return fromQuery;
  const fromHeader = single(headers[SESSION_TOKEN_HEADER]);
  if (fromHeader) return fromHeader.trim();
  return bearerToken(single(headers.authorization)) ?? "";
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function cookieValue(header: string | undefined, name: string): string {
  if (!header) return "";
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return "";
}
