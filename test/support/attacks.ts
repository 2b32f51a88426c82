/**
 * Attacks on the transport at a chosen scale, for the tests that assert their bounds and for
 * bench/caps.ts that prints before/after figures. Each returns once its bytes are out (or the
 * server refused them) and leaves its connections open until `release()`, so the server's memory
 * can be read while the attack holds what it got.
 */
import { readFileSync } from "node:fs";
import { connect as tcpConnect, type Socket } from "node:net";
import type { Stream } from "../../src/yamux/index.js";
import { dialRawTunnel } from "./raw-tunnel.js";

const MANIFEST_PATH = "/coder.agent.v2.Agent/GetManifest";
/** The largest request body a call may declare (one byte under the 4 MiB message limit). */
export const NEAR_LIMIT_BODY = 4 * 1024 * 1024 - 1;

export interface HeldAttack {
  /** Connections (or streams) the server closed or refused so far. */
  readonly refused: number;
  /** Closes everything the attack holds. */
  release(): void;
}

/** Resident memory of a process in bytes, from /proc (Linux). */
export function rssOf(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
}

function requestHead(contentLength: number, token: string | undefined): string {
  const lines = [`POST ${MANIFEST_PATH} HTTP/1.1`, "Host: agentgate", "Content-Type: application/json", `Content-Length: ${contentLength}`];
  if (token !== undefined) lines.push(`Coder-Session-Token: ${token}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/**
 * Writes `data` and resolves once it is written, or the stream closed, or `boundMs` passed with
 * the peer not reading (what a stalled server leaves in our socket buffer doesn't matter here).
 */
function writeAll(stream: Socket | Stream, data: Buffer | string, boundMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, boundMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    stream.once("close", done);
    if (stream.write(data)) done();
    else stream.once("drain", done);
  });
}

/**
 * `connections` unauthenticated HTTP/1.1 calls on the plain port, each declaring a near-limit body
 * and sending `bodyBytes` of it, then stalling.
 */
export async function unauthenticatedBodies(port: number, connections: number, bodyBytes: number, boundMs = 5_000): Promise<HeldAttack> {
  const sockets: Socket[] = [];
  let refused = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      const socket = tcpConnect(port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.on("data", () => undefined);
      socket.once("close", () => refused++);
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      await writeAll(socket, requestHead(NEAR_LIMIT_BODY, undefined), boundMs);
      await writeAll(socket, Buffer.alloc(bodyBytes, 0x20), boundMs);
    }),
  );
  return {
    get refused() {
      return refused;
    },
    release: () => sockets.forEach((s) => s.destroy()),
  };
}

/**
 * One agent's tunnel with `streams` yamux streams, each an HTTP/1.1 call declaring a near-limit
 * body and sending `bodyBytes` of it, then stalling.
 */
export async function tunnelBodies(baseUrl: string, token: string, streams: number, bodyBytes: number, boundMs = 5_000): Promise<HeldAttack> {
  const tunnel = await dialRawTunnel(baseUrl, token);
  let refused = 0;
  await Promise.all(
    Array.from({ length: streams }, async () => {
      let stream: Stream;
      try {
        stream = tunnel.session.open();
      } catch {
        refused++;
        return;
      }
      stream.on("error", () => undefined);
      // The server ending its side (after a refusal) or resetting the stream both count.
      let counted = false;
      const count = () => {
        if (!counted) refused++;
        counted = true;
      };
      stream.once("end", count);
      stream.once("close", count);
      stream.resume();
      await writeAll(stream, requestHead(NEAR_LIMIT_BODY, undefined), boundMs);
      await writeAll(stream, Buffer.alloc(bodyBytes, 0x20), boundMs);
    }),
  );
  return {
    get refused() {
      return refused;
    },
    release: () => tunnel.ws.terminate(),
  };
}

/**
 * Slowloris: a request head dripped a byte every `intervalMs`. Resolves with how long the server
 * kept the connection, or undefined if it still had it after `giveUpMs`.
 */
export function slowlorisLifetime(port: number, intervalMs: number, giveUpMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const text = "GET /healthz HTTP/1.1\r\nHost: agentgate\r\nX-Slow: " + "a".repeat(16_000);
    const started = Date.now();
    const socket = tcpConnect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    let sent = 0;
    const drip = setInterval(() => socket.write(text[sent++ % text.length]!), intervalMs);
    const giveUp = setTimeout(() => finish(undefined), giveUpMs);
    socket.once("close", () => finish(Date.now() - started));
    function finish(lifetime: number | undefined) {
      clearInterval(drip);
      clearTimeout(giveUp);
      socket.destroy();
      resolve(lifetime);
    }
  });
}
