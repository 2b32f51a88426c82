import { BlockList, isIPv4, isIPv6 } from "node:net";

/** Tailscale's service prefix `fd7a:115c:a1e0::/48`: its first 6 bytes. */
const TAILSCALE_PREFIX = Buffer.from("fd7a115ca1e0", "hex");
/** Coder's service prefix `fd60:627a:a42b::/48`: its first 6 bytes. */
const CODER_PREFIX = Buffer.from("fd60627aa42b", "hex");
/** The single address every agent had before addresses were derived from agent ids. */
export const LEGACY_AGENT_ADDRESS = "fd7a:115c:a1e0:49d6:b259:b7ac:b1b2:48f4";

/** A CIDR prefix as a node lists it in `addresses`. */
export interface ParsedPrefix {
  address: string;
  family: "ipv4" | "ipv6";
  bits: number;
}

/** Parses `addr/bits` as Go's `netip.ParsePrefix` accepts it (no zones); throws with the reason. */
export function parsePrefix(text: string): ParsedPrefix {
  const slash = text.lastIndexOf("/");
  if (slash < 0) throw new Error(`parse node address: no '/' in "${text}"`);
  const address = text.slice(0, slash);
  const bitsText = text.slice(slash + 1);
  const family = isIPv6(address) && !address.includes("%") ? "ipv6" : isIPv4(address) ? "ipv4" : undefined;
  if (family === undefined) throw new Error(`parse node address: bad IP address "${address}"`);
  const bits = /^(0|[1-9][0-9]{0,2})$/.test(bitsText) ? Number(bitsText) : NaN;
  if (!(bits <= (family === "ipv6" ? 128 : 32))) throw new Error(`parse node address: bad bits after slash in "${text}"`);
  return { address, family, bits };
}

/** The address of `agentId` in a /48 prefix: the UUID's bytes with its first 6 replaced by the prefix. */
function addressInPrefix(agentId: string, prefix: Buffer): string {
  const bytes = Buffer.from(agentId.replaceAll("-", ""), "hex");
  prefix.copy(bytes, 0);
  const hex = bytes.toString("hex");
  return Array.from({ length: 8 }, (_, i) => hex.slice(i * 4, i * 4 + 4)).join(":");
}

/** The addresses an agent may claim: its own in the Tailscale and Coder prefixes, and the legacy one. */
export function agentAddresses(agentId: string): string[] {
  return [addressInPrefix(agentId, TAILSCALE_PREFIX), addressInPrefix(agentId, CODER_PREFIX), LEGACY_AGENT_ADDRESS];
}

/** A set of IPv6 addresses compared by value, whatever the spelling (`::` compression, case). */
export function ipv6Set(addresses: string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const a of addresses) list.addAddress(a, "ipv6");
  return (address) => list.check(address, "ipv6");
}
