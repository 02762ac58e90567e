import type { AgentLlmAccess, LlmGateway, ServedSocket } from './gateway.js';
import { LLM_SOCKET_NAME } from './gateway.js';

/**
 * The gateway as a service of the agent channel (the shape of `@warren/runtime`'s `ChannelService`):
 * a runtime calls `serve(spec, <socketDir>/llm.sock)` when it starts an instance and closes what it
 * returned when the instance ends.
 */
export interface LlmChannelService<Spec extends { readonly uid: number; readonly gid: number }> {
  /** `llm.sock`: the agent sees it at `/run/warren/llm.sock`. */
  readonly socketName: string;
  /** Serves the agent of `spec` (owned by its uid and gid, mode 0660), or null when it gets no gateway. */
  serve(spec: Spec, socketPath: string): Promise<ServedSocket | null>;
}

/**
 * Adapts `gateway` to the runtime's channel services.
 * @param accessOf what the agent of `spec` may do through its gateway, or null when it gets none
 *   (a `shell` agent). Called once per instance start; may throw to fail the start.
 */
export function llmChannelService<Spec extends { readonly uid: number; readonly gid: number }>(
  gateway: LlmGateway,
  accessOf: (spec: Spec) => AgentLlmAccess | null | Promise<AgentLlmAccess | null>,
): LlmChannelService<Spec> {
  return {
    socketName: LLM_SOCKET_NAME,
    async serve(spec, socketPath) {
      const access = await accessOf(spec);
      if (!access) return null;
      return gateway.serve(access, socketPath, { owner: { uid: spec.uid, gid: spec.gid } });
    },
  };
}
