/**
 * A Tailnet client as another program would be one: it dials the client coordination route
 * (`/api/v2/workspaceagents/{agent}/coordinate`), runs our yamux client session on the WebSocket
 * and calls the Tailnet service over HTTP/2 on its streams. Its own peer id is the subject of the
 * resume token the server gives it.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { decodeJwt } from "jose";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { dialTunnel, type Tunnel } from "../../src/client/dial.js";
import { TestPeer } from "./tailnet-peer.js";

export interface TailnetClient {
  tunnel: Tunnel;
  tailnet: Client<typeof Tailnet>;
  /** The Agent service on the same tunnel: a client must not reach it. */
  agent: Client<typeof Agent>;
  /** A resume token from RefreshResumeToken, and the peer id it carries. */
  resume(): Promise<{ token: string; peerId: string }>;
  /** A peer coordinating through this tunnel under `peerId` (from {@link resume}). */
  peer(peerId: string): TestPeer;
  close(): void;
}

/** The client route of `agentId` on the server at `baseUrl`, with `resume_token` when given. */
export function coordinateUrl(baseUrl: string, agentId: string, opts: { resumeToken?: string } = {}): URL {
  const url = new URL(`/api/v2/workspaceagents/${agentId}/coordinate`, baseUrl);
  if (opts.resumeToken !== undefined) url.searchParams.set("resume_token", opts.resumeToken);
  return url;
}

/** Dials the client route; rejects with a DialRefusedError when the server refuses. */
export async function dialTailnetClient(baseUrl: string, agentId: string, token: string, opts: { resumeToken?: string; version?: string } = {}): Promise<TailnetClient> {
  const tunnel = await dialTunnel({ url: coordinateUrl(baseUrl, agentId, opts), token, version: opts.version ?? "2.13", keepaliveIntervalMs: 0 });
  const transport = createGrpcTransport({ baseUrl: "http://agentgate.tunnel", nodeOptions: { createConnection: () => tunnel.session.open() } });
  const tailnet = createClient(Tailnet, transport);
  return {
    tunnel,
    tailnet,
    agent: createClient(Agent, transport),
    async resume() {
      const { token: resumeToken } = await tailnet.refreshResumeToken({});
      return { token: resumeToken, peerId: decodeJwt(resumeToken).sub! };
    },
    peer: (peerId) => TestPeer.remote((requests, signal) => tailnet.coordinate(requests, { signal }), peerId, "client"),
    close() {
      tunnel.session.destroy();
      tunnel.ws.close(1000);
    },
  };
}
