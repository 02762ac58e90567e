import { commitWithoutSync, type SqliteDatabase } from '@warren/store';

/** Where an agent was last started: `nodes` with the node's name, or `kubernetes` (node null). */
export interface AgentPlacementRow {
  readonly agent: string;
  readonly target: 'nodes' | 'kubernetes';
  readonly node: string | null;
  /** When it was placed there, ms since the epoch. */
  readonly placedMs: number;
}

/**
 * The table `agent_placements (agent TEXT PRIMARY KEY, target TEXT NOT NULL, node TEXT, placed_ms
 * INTEGER NOT NULL)`: where each agent was last started, so exec, stop, sleep and release of its
 * storage go to the same place, also after a restart of the supervisor.
 */
export class AgentPlacements {
  private readonly getRow;
  private readonly putRow;
  private readonly deleteRow;

  /** Makes the table if missing (idempotent). */
  constructor(private readonly db: SqliteDatabase) {
    db.exec(`CREATE TABLE IF NOT EXISTS agent_placements (
      agent TEXT PRIMARY KEY,
      target TEXT NOT NULL CHECK (target IN ('nodes', 'kubernetes')),
      node TEXT,
      placed_ms INTEGER NOT NULL
    )`);
    this.getRow = db.prepare('SELECT agent, target, node, placed_ms AS placedMs FROM agent_placements WHERE agent = ?');
    this.putRow = db.prepare(
      'INSERT INTO agent_placements (agent, target, node, placed_ms) VALUES (?, ?, ?, ?) ON CONFLICT (agent) DO UPDATE SET target = excluded.target, node = excluded.node, placed_ms = excluded.placed_ms',
    );
    this.deleteRow = db.prepare('DELETE FROM agent_placements WHERE agent = ?');
  }

  /** Where `agent` was last placed, or undefined (never placed, or its storage was released). */
  get(agent: string): AgentPlacementRow | undefined {
    return this.getRow.get(agent) as AgentPlacementRow | undefined;
  }

  /** Every row, sorted by agent. */
  list(): AgentPlacementRow[] {
    return this.db.prepare('SELECT agent, target, node, placed_ms AS placedMs FROM agent_placements ORDER BY agent').all() as AgentPlacementRow[];
  }

  /**
   * Records that `agent` was started at `target` (on `node`). Commits without an fsync: the
   * agent's start commit that follows (synced by the tick's barrier) makes it durable.
   */
  put(agent: string, target: AgentPlacementRow['target'], node: string | null, nowMs: number): void {
    commitWithoutSync(this.db, () => this.putRow.run(agent, target, node, nowMs));
  }

  /**
   * Forgets `agent` (its account and storage are gone). Commits without an fsync: the account's
   * deletion commit that follows makes it durable.
   */
  delete(agent: string): void {
    commitWithoutSync(this.db, () => this.deleteRow.run(agent));
  }
}
