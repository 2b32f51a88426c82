/**
 * Coder's naming rules, one place for every name agentgate checks: provisioning's usernames,
 * workspace and agent names and app slugs, and the sub-agents an agent creates itself.
 */

/** Agent names, usernames and workspace names: letters, digits and single inner hyphens. */
const NAME_PATTERN = /^[a-zA-Z0-9](?:-?[a-zA-Z0-9])*$/;
/** App slugs: lower-case letters, digits and single inner hyphens. */
const APP_SLUG_PATTERN = /^[a-z0-9](?:-?[a-z0-9])*$/;
/** `workspace_agents.name` is varchar(64). */
export const MAX_AGENT_NAME = 64;
/** Usernames and workspace names: Coder's 32-character limit. */
export const MAX_USER_OR_WORKSPACE_NAME = 32;

/** What is wrong with `name` under {@link NAME_PATTERN} and `maxLength`, as `"x" must be …`; undefined when nothing. */
export function nameProblem(name: string, maxLength: number): string | undefined {
  if (NAME_PATTERN.test(name) && name.length <= maxLength) return undefined;
  return `"${name}" must be 1–${maxLength} letters, digits and single hyphens, not starting or ending with one`;
}

/** Whether `slug` follows {@link APP_SLUG_PATTERN}. */
export function isAppSlug(slug: string): boolean {
  return APP_SLUG_PATTERN.test(slug);
}
