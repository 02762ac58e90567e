/**
 * One authorized decision, as Warren audits it: who asked (`principal`, Casbin's `sub`), for what
 * (`object`, `obj`) and to do what (`action`, `act`), the answer, and the rule that gave it.
 */
export interface Decision {
  readonly allowed: boolean;
  /** Casbin's `sub`: an agent (`shell-1`), a template (`template:shell`) or a person (`user:root`). */
  readonly principal: string;
  /** Casbin's `obj`: `task:<id>`, `agent:<name>`. */
  readonly object: string;
  /** Casbin's `act`: `assign`, `message`, `exec`, `stop`, ... */
  readonly action: string;
  /**
   * The policy line that decided, e.g. `p, role:worker, task:*, assign, allow`; null when no rule
   * matched and the effect's default answered (or the policy could not decide and the request was
   * denied).
   */
  readonly rule: string | null;
}
