import type { AgentEvents } from '../../src/index.js';

/** Waits until `check()` holds, polling every 20 ms; fails naming `what` after `timeoutMs` (a generous deadline, never a speed claim). */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** {@link AgentEvents} that record what they were told and allow every message and assignment. */
export class RecordingEvents implements AgentEvents {
  readonly hellos: { agent: string; pid: number }[] = [];
  readonly acks: { agent: string; taskId: string; attempt: number }[] = [];
  readonly disconnects: string[] = [];
  readonly protocolErrors: string[] = [];
  readonly assignmentsChecked: { agent: string; subject: string; taskId: string; attempt: number }[] = [];
  alives = 0;

  hello(agent: string, pid: number): void {
    this.hellos.push({ agent, pid });
  }

  taskAcked(agent: string, taskId: string, attempt: number): void {
    this.acks.push({ agent, taskId, attempt });
  }

  alive(): void {
    this.alives += 1;
  }

  disconnected(agent: string): void {
    this.disconnects.push(agent);
  }

  protocolError(_agent: string, message: string): void {
    this.protocolErrors.push(message);
  }

  readonly sent: { from: string; to: string; body: unknown }[] = [];

  sendMessage(from: string, to: string, body: unknown): Promise<{ id: string }> {
    this.sent.push({ from, to, body });
    return Promise.resolve({ id: `m-${this.sent.length}` });
  }

  authorizeAssignment(agent: string, subject: string, taskId: string, attempt: number): string | null {
    this.assignmentsChecked.push({ agent, subject, taskId, attempt });
    return null;
  }
}
