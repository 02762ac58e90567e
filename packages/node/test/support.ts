import type { Logger } from '@warren/core';
import type { AgentEvents } from '@warren/runtime';

/** A logger that keeps every line, for assertions on what was logged. */
export function recordingLogger(): Logger & { lines: { level: string; msg: string | undefined; obj: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string | undefined; obj: Record<string, unknown> }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, msg, obj: obj as Record<string, unknown> });
  };
  const logger = { lines, trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger };
  return logger;
}

/**
 * Waits until `check` returns a value other than undefined or false and returns it. The deadline
 * only turns a hang into a failure naming `what`; it asserts nothing about speed.
 */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, guardMs = 20_000): Promise<T> {
  const deadline = Date.now() + guardMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One call an {@link RecordingEvents} received. */
export type EventCall = readonly [string, ...unknown[]];

/**
 * `AgentEvents` that record every call; `sendMessage` and `authorizeAssignment` answer with the
 * functions a test sets (default: message ids `m-<n>`, every assignment delivered).
 */
export class RecordingEvents implements AgentEvents {
  readonly calls: EventCall[] = [];
  onSend: (from: string, to: string, body: unknown, ref: string) => Promise<{ id: string }> = (from, to) =>
    Promise.resolve({ id: `m-${this.calls.filter((c) => c[0] === 'sendMessage').length}-${from}-${to}` });
  onAuthorize: (agent: string, subject: string, taskId: string, attempt: number) => string | null | Promise<string | null> = () => null;

  hello(agent: string, pid: number): void {
    this.calls.push(['hello', agent, pid]);
  }
  taskAcked(agent: string, taskId: string, attempt: number): void {
    this.calls.push(['taskAcked', agent, taskId, attempt]);
  }
  alive(agent: string): void {
    this.calls.push(['alive', agent]);
  }
  disconnected(agent: string): void {
    this.calls.push(['disconnected', agent]);
  }
  protocolError(agent: string, message: string): void {
    this.calls.push(['protocolError', agent, message]);
  }
  progressEvent(agent: string, taskId: string, attempt: number, event: Readonly<Record<string, unknown>>): void {
    this.calls.push(['progressEvent', agent, taskId, attempt, event]);
  }
  sendMessage(from: string, to: string, body: unknown, ref: string): Promise<{ readonly id: string }> {
    this.calls.push(['sendMessage', from, to, body, ref]);
    return this.onSend(from, to, body, ref);
  }
  authorizeAssignment(agent: string, subject: string, taskId: string, attempt: number): string | null | Promise<string | null> {
    this.calls.push(['authorizeAssignment', agent, subject, taskId, attempt]);
    return this.onAuthorize(agent, subject, taskId, attempt);
  }
}
