/** Raw HTTP helpers for endpoint tests: see exactly what the server answers before any upgrade. */
import { request } from "node:http";

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
