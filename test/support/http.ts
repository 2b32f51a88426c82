/** Raw HTTP helpers for endpoint tests: see exactly what the server answers before any upgrade. */
import { request } from "node:http";
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Whether the server switched protocols (it never must on a refusal). */
  upgraded: boolean;
}

/** Sends a GET (optionally with WebSocket upgrade headers) and reads the whole answer. */
export function rawGet(url: string, headers: Record<string, string> = {}, opts: { upgrade?: boolean } = {}): Promise<RawResponse> {
  const upgradeHeaders = opts.upgrade === false ? {} : {
    connection: "Upgrade",
    upgrade: "websocket",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "GET", headers: { ...upgradeHeaders, ...headers }, agent: false });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: "", upgraded: true });
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, upgraded: false }));
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * Writes a WebSocket upgrade request byte for byte on a plain TCP socket and returns the response
 * head exactly as the server sent it (status line and headers, lower-cased names), with no client
 * library in between to accept or reject what it says.
 */
export function rawUpgradeHead(url: string, headers: Record<string, string>): Promise<{ statusLine: string; headers: Map<string, string> }> {
  const target = new URL(url);
  const lines = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(target.port), target.hostname);
    let seen = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      seen += chunk;
      const end = seen.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.destroy();
      const [statusLine, ...rest] = seen.slice(0, end).split("\r\n");
      const parsed = new Map<string, string>();
      for (const line of rest) {
        const colon = line.indexOf(":");
        parsed.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      resolve({ statusLine: statusLine!, headers: parsed });
    });
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`connection closed before a response head: ${JSON.stringify(seen)}`)));
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  });
}
