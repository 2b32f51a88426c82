import { STATUS_CODES, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** One entry of a response's `validations`: which input was wrong and why. */
export interface Validation {
  field: string;
  detail: string;
}

/** The JSON body of every error answered before the upgrade, coderd's `{message, detail, validations}`. */
export interface ErrorBody {
  message: string;
  detail?: string;
  validations?: Validation[];
}

/**
 * An HTTP error with the status and body to answer; thrown by auth and route code, written once at
 * the edge. A `cause` is for the server's log only, never the body.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    /** `headers`: extra response headers, e.g. `Retry-After` on a 503. */
    options?: ErrorOptions & { headers?: Readonly<Record<string, string>> },
  ) {
    super(body.detail ? `${body.message} ${body.detail}` : body.message, options);
    this.name = "HttpError";
    this.headers = options?.headers ?? {};
  }

  /** Extra response headers to answer with. */
  readonly headers: Readonly<Record<string, string>>;
}

/** Writes `{message, detail?, validations?}` with the status; a no-op if headers already went out. */
export function writeError(res: ServerResponse, status: number, body: ErrorBody, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent) return;
  const json = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(json) });
  res.end(json);
}

/** The same answer written on a socket that was never upgraded (an upgrade request), then closed. */
export function writeSocketError(socket: Duplex, status: number, body: ErrorBody, headers: Readonly<Record<string, string>> = {}): void {
  if (socket.destroyed) return;
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join("") +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(json)}\r\n` +
      "Connection: close\r\n\r\n" +
      json,
  );
}
