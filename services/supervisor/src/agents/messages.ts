import type { SupervisorContext } from '../context.js';

/** Names an agent may have (and so the recipients a message may name). */
const AGENT_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * Decides whether agent `from` may send a message to agent `to` (the policy: `from`, `agent:<to>`,
 * `message`), audits the decision, and checks that `to` exists.
 * @returns null when the message may be relayed, else why not (in words).
 */
export function authorizeMessage(ctx: SupervisorContext, from: string, to: string): string | null {
  if (!ctx.authorizer.authorize({ principal: from, object: `agent:${to}`, action: 'message' }).allowed) return `policy denies ${from} sending to ${to}`;
  if (!AGENT_NAME.test(to) || !ctx.accounts.get(to)) return `no agent named ${JSON.stringify(to)}`;
  return null;
}
