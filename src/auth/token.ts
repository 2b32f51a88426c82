import type { IncomingHttpHeaders } from "node:http";

/** The cookie and query parameter name agents use for their token (agent-api.md §1.2). */
export const SESSION_TOKEN_COOKIE = "coder_session_token";
/** The header name for the token. */
export const SESSION_TOKEN_HEADER = "coder-session-token";

/**
 * Finds the agent token in a request: cookie, then query parameter, then the
 * `Coder-Session-Token` header, then `Authorization: Bearer` (contract C2). The first
 * non-empty one wins; "" when there is none.
 */
export function extractToken(headers: IncomingHttpHeaders, url: URL | undefined): string {
  const fromCookie = cookieValue(headers.cookie, SESSION_TOKEN_COOKIE);
  if (fromCookie) return fromCookie;
  const fromQuery = url?.searchParams.get(SESSION_TOKEN_COOKIE);
  if (fromQuery) return fromQuery;
  const fromHeader = single(headers[SESSION_TOKEN_HEADER]);
  if (fromHeader) return fromHeader.trim();
  const authorization = single(headers.authorization);
  const bearer = authorization?.match(/^Bearer\s+(\S+)\s*$/i);
  return bearer?.[1] ?? "";
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
