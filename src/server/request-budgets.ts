import type { AgentIdentity } from "../auth/agent-identity.js";
import { ByteBudget } from "./byte-budget.js";

/** The level of a byte budget that refused a request, for `agentgate_requests_refused_total`. */
export type BudgetLevel = "connection_bytes" | "agent_bytes" | "process_bytes";

/** The byte limits of request bodies in flight. */
export interface RequestBudgetLimits {
  maxRequestBytesPerConnection: number;
  maxRequestBytesPerAgent: number;
  maxRequestBytes: number;
}

/**
 * The budgets request bodies in flight are charged to: one per connection (an HTTP/1.1 socket or
 * an HTTP/2 session), drawing on one per agent tunnel, drawing on one for the process. Both RPC
 * paths (connect-node behind the request gate, and the lean unary path) charge the same ones, so
 * a cap holds whichever path a call takes.
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

  /** The budget of `connection`, inside `tunnel`'s when it is one of an agent tunnel's streams. */
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
export function charge(budget: ByteBudget<BudgetLevel>, bytes: number): BudgetLevel | undefined {
  if (budget.tryCharge(bytes)) return undefined;
  return budget.refusingLevel(bytes) ?? "process_bytes";
}

/** What a refusal by `level` tells the caller. */
export function budgetRefusalText(level: BudgetLevel): string {
  switch (level) {
    case "connection_bytes":
      return "too many request bytes in flight on this connection";
    case "agent_bytes":
      return "too many request bytes in flight for this agent";
    default:
      return "the server has too many request bytes in flight";
  }
}
