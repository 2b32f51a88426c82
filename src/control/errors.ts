import { Code, ConnectError } from "@connectrpc/connect";
import { ProvisionError, type ProvisionErrorReason } from "../provision/provision.js";
import { SpecError } from "../provision/spec.js";

const CODES: Record<ProvisionErrorReason, Code> = {
  invalid: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
};

/**
 * The ConnectError a control call answers for a provisioning or spec error, with its message
 * unchanged (it names the field or workspace). Anything else is returned as is, for Connect to
 * report as Internal.
 */
export function toConnectError(err: unknown): unknown {
  if (err instanceof SpecError) return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  if (err instanceof ProvisionError) return new ConnectError(err.message, CODES[err.reason], undefined, undefined, err);
  return err;
}
