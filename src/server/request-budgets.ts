import type { AgentIdentity } from "../auth/agent-identity.js";
import { ByteBudget } from "./byte-budget.js";

/** Which limit refused request bytes: the `reason` of `agentgate_requests_refused_total`. */
export type BudgetLevel = "connection_bytes" | "agent_bytes" | "process_bytes";

/** The limits of request bytes held at once, from the server's config. */
export interface RequestBudgetLimits {
  maxRequestBytesPerConnection: number;
  maxRequestBytesPerAgent: number;
  maxRequestBytes: number;
}

/**
 * The request bytes a process holds, nested: each connection's budget draws on its agent's (in a
 * tunnel) and the process's. One per server, shared by every path that reads request bodies
 * (node's HTTP servers through the request gate, a tunnel's own HTTP/2 connections), so the
 * limits hold whichever path a call takes.
 */
export class RequestBudgets {
  private readonly process: ByteBudget<BudgetLevel>;
  private readonly byAgent = new WeakMap<AgentIdentity, ByteBudget<BudgetLevel>>();
  private readonly byConnection = new WeakMap<object, ByteBudget<BudgetLevel>>();

  constructor(private readonly limits: RequestBudgetLimits) {
    this.process = new ByteBudget(limits.maxRequestBytes, "process_bytes");
  }

  /** Bytes of request bodies the process holds right now. */
  get bytesInFlight(): number {
    return this.process.inUse;
  }

  /** The budget of one connection (any object that lives as long as it), under its agent's in a tunnel. */
  forConnection(connection: object, tunnel: AgentIdentity | undefined): ByteBudget<BudgetLevel> {
    let budget = this.byConnection.get(connection);
    if (budget === undefined) {
      let parent = this.process;
      if (tunnel !== undefined) {
        let agent = this.byAgent.get(tunnel);
        if (agent === undefined) this.byAgent.set(tunnel, (agent = new ByteBudget<BudgetLevel>(this.limits.maxRequestBytesPerAgent, "agent_bytes", this.process)));
        parent = agent;
      }
      budget = new ByteBudget<BudgetLevel>(this.limits.maxRequestBytesPerConnection, "connection_bytes", parent);
      this.byConnection.set(connection, budget);
    }
    return budget;
  }
}

/** Charges `bytes`, naming the first level without room when it fails. */
export function chargeBudget(budget: ByteBudget<BudgetLevel>, bytes: number): BudgetLevel | undefined {
  if (budget.tryCharge(bytes)) return undefined;
  return budget.refusingLevel(bytes) ?? "process_bytes";
}
