/**
 * How the supervisor builds its {@link MessageService}: the broker's messaging methods, the
 * registry's message ledger on the state database, and the live status of running agents from the
 * agent world (for presence).
 */
import { agentView } from '@warren/ecs';
import { MessageLedger } from '@warren/registry';
import type { SupervisorContext } from '../context.js';
import type { MessageServiceOptions } from './service.js';

/** The options of the supervisor's message service over `ctx` (one `MessageLedger` on `ctx.db`). */
export function messageServiceOptions(ctx: SupervisorContext): MessageServiceOptions {
  return {
    ctx,
    broker: ctx.broker,
    ledger: new MessageLedger(ctx.db),
    live: (name) => {
      const view = agentView(ctx.world, name);
      return view === undefined ? undefined : { status: view.status, lastHeartbeatMs: view.lastHeartbeatMs };
    },
  };
}
