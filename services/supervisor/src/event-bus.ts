/**
 * The one way Warren says that something happened: {@link EventBus.emit} appends the audit row,
 * logs one line and, once the row is committed, publishes the event on NATS.
 *
 * ```ts
 * const bus = new EventBus({ db, audit, logger });
 * bus.attachBroker(broker); // the broker opens after the database
 * bus.transaction(() => {
 *   state.putTask(row);
 *   bus.emit({ actor: 'supervisor', action: 'task.assign', object: 'task:t1', details: { agent: 'shell-1', attempt: 1 } });
 * }); // committed: `warren.<instance>.events.task.assign` is published now
 * ```
 */
import type { AuditRecord, AuditTrail } from '@warren/audit';
import type { Logger } from '@warren/core';
import type { SqliteDatabase } from '@warren/store';
import { eventLogLine, type EventKind, type LogLevel, type WarrenEvent } from './events.js';

/**
 * What an event carries on NATS (JSON), under `<prefix>.events.<kind>`: the audit row as stored,
 * without its hash chain.
 */
export interface EventPayload {
  /** The audit row's sequence number: consecutive, so a gap shows a lost message. */
  readonly seq: number;
  /** The audit row's time, in ms since the Unix epoch. */
  readonly ts: number;
  /** The event's kind, the audit row's `action`. */
  readonly kind: EventKind;
  readonly actor: string;
  readonly object: string;
  readonly decision: 'allow' | 'deny' | null;
  /** The kind's details (see `EventDetails`), or null. */
  readonly details: unknown;
}

/** Where events are published: `Broker.publishEvent` of `@warren/broker`. */
export interface EventPublisher {
  /** Publishes `payload` (JSON) on `<prefix>.events.<kind>`; may throw when the connection is closed. */
  publishEvent(kind: string, payload: unknown): void;
}

/** Replaces parts of the catalogue's log line for one emit (a message that names the case). */
export interface EventLogOverride {
  readonly level?: LogLevel;
  readonly message?: string;
  readonly fields?: Record<string, unknown>;
}

/** The type of {@link EventBus.emit}, for helpers that are handed it as a callback. */
export type EmitEvent = (event: WarrenEvent, line?: EventLogOverride) => void;

/** Options of {@link EventBus}. */
export interface EventBusOptions {
  /** The state database the audit trail lives in; its transactions are the bus's. */
  readonly db: SqliteDatabase;
  /** The audit trail, opened on `db`. */
  readonly audit: AuditTrail;
  /** Where each event's one line goes. */
  readonly logger: Logger;
}

/** Counts of what the bus did with its events since it was made. */
export interface EventBusStats {
  /** Events handed to the broker. */
  readonly published: number;
  /** Events kept in the audit trail only: no broker attached, the broker closed, or a publish failed. */
  readonly dropped: number;
  /** Events whose audit row was rolled back (never published). */
  readonly discarded: number;
}

interface Pending {
  readonly payload: EventPayload;
  /** The row's hash; checked before publishing an event emitted inside a transaction the bus did not open. */
  readonly hash: string;
  /** Emitted inside a transaction the bus did not open, so whether it committed is checked first. */
  foreign: boolean;
}

/**
 * Appends, logs and publishes Warren's events (see the module comment and `events.ts`).
 *
 * - Inside {@link transaction} an event's row is part of that transaction and the event is
 *   published after the commit, or dropped if it rolls back. Outside, it is published at once.
 * - Inside a transaction opened on `db` some other way, it is published once that transaction has
 *   ended and only if its row is still there (same seq and hash).
 * - Events are published in the order of their audit rows. Publishing never throws: without a
 *   broker, with a closed one or on a failed publish the event stays in the audit trail only
 *   (counted in {@link stats}, logged at debug).
 */
export class EventBus {
  private readonly db: SqliteDatabase;
  private readonly audit: AuditTrail;
  private readonly log: Logger;
  private broker: EventPublisher | undefined;
  private depth = 0;
  private readonly pending: Pending[] = [];
  private flushScheduled = false;
  private closed = false;
  private hashAt: ((seq: number) => string | undefined) | undefined;
  private counts = { published: 0, dropped: 0, discarded: 0 };
  private readonly listeners = new Set<(payload: EventPayload) => void>();
  /** Open holds (see {@link hold}) and the events they keep back, in order. */
  private holds = 0;
  private readonly held: EventPayload[] = [];

  constructor(options: EventBusOptions) {
    this.db = options.db;
    this.audit = options.audit;
    this.log = options.logger;
  }

  /**
   * Publishes the events emitted from now on through `broker` (events emitted before stay in the
   * audit trail only). A later call replaces the broker; no-op once closed.
   */
  attachBroker(broker: EventPublisher): void {
    if (!this.closed) this.broker = broker;
  }

  /**
   * Calls `listener` with each event from now on once its row is committed, in the order of the
   * audit rows, before it is handed to the broker (the HTTP API's event stream, the metrics). A
   * listener that throws is logged at debug and kept; it must not emit events itself.
   * @returns the function that removes the listener (idempotent).
   */
  subscribe(listener: (payload: EventPayload) => void): () => void {
    const entry = (payload: EventPayload): void => listener(payload);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** What was published, dropped and discarded so far. */
  get stats(): EventBusStats {
    return { ...this.counts };
  }

  /**
   * Records `event`: appends its audit row (inside the running transaction if there is one), logs
   * its one line (the catalogue's level, message and fields, parts replaced by `line`) and
   * publishes it after the commit (see the class comment).
   * @returns the stored audit row.
   * @throws {AuditError} if the row cannot be appended (a field is invalid, SQLite refuses); then
   *   nothing is logged or published.
   */
  emit(event: WarrenEvent, line?: EventLogOverride): AuditRecord {
    const record = this.audit.append(event);
    this.logLine(event, line);
    const pending: Pending = {
      payload: {
        seq: record.seq,
        ts: record.timeMs,
        kind: event.action,
        actor: record.actor,
        object: record.object,
        decision: record.decision,
        details: event.details ?? null,
      },
      hash: record.hash,
      foreign: this.depth === 0 && this.db.inTransaction,
    };
    this.pending.push(pending);
    if (this.depth > 0) return record;
    if (pending.foreign) this.scheduleFlush();
    else this.flush();
    return record;
  }

  /**
   * Runs `fn` in one SQLite transaction; a call inside another joins it (as a savepoint: if `fn`
   * throws, its rows and events go, the outer transaction's stay). The events emitted inside are
   * published after the outermost commit, none if it rolls back.
   * @returns what `fn` returns. @throws what `fn` throws, after the rollback.
   */
  transaction<T>(fn: () => T): T {
    const mark = this.pending.length;
    this.depth += 1;
    let result: T;
    try {
      result = this.db.transaction(fn)();
    } catch (error) {
      this.counts.discarded += this.pending.length - mark;
      this.pending.length = mark;
      throw error;
    } finally {
      this.depth -= 1;
    }
    if (this.depth === 0) this.flush();
    return result;
  }

  /**
   * Keeps committed events from the listeners and the broker until the returned release is called
   * (for commits made without an fsync: their events wait for the fsync, see `CommitBarrier`).
   * Holds nest: the events go out, in order, when the last one is released. The release is
   * idempotent.
   */
  hold(): () => void {
    this.holds += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds -= 1;
      if (this.holds === 0) for (const payload of this.held.splice(0)) this.publish(payload);
    };
  }

  /**
   * Publishes what is still pending (held events too) and detaches the broker; later events are
   * audited and logged only. Idempotent.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.holds = 0;
      for (const payload of this.held.splice(0)) this.publish(payload);
      if (this.depth === 0 && !this.db.inTransaction) this.flush();
      this.closed = true;
      this.broker = undefined;
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Publishes the pending events in order, unless a transaction is still open. */
  private flush(): void {
    if (this.depth > 0) return;
    if (this.db.inTransaction) {
      // Committed only when that transaction commits: check each row once it has ended.
      for (const p of this.pending) p.foreign = true;
      this.scheduleFlush();
      return;
    }
    for (const p of this.pending.splice(0)) {
      if (p.foreign && !this.committed(p)) {
        this.counts.discarded += 1;
        continue;
      }
      this.publish(p.payload);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (this.db.open) this.flush();
      else this.dropPending('the database is closed');
    });
  }

  private committed(p: Pending): boolean {
    if (!this.db.open) return false;
    this.hashAt ??= (() => {
      const statement = this.db.prepare<[number], { hash: string }>('SELECT hash FROM audit WHERE seq = ?');
      return (seq: number) => statement.get(seq)?.hash;
    })();
    return this.hashAt(p.payload.seq) === p.hash;
  }

  private dropPending(reason: string): void {
    const dropped = this.pending.splice(0);
    if (dropped.length === 0) return;
    this.counts.dropped += dropped.length;
    this.log.debug({ events: dropped.length, reason }, 'events kept in the audit trail only');
  }

  private publish(payload: EventPayload): void {
    if (this.holds > 0) {
      this.held.push(payload);
      return;
    }
    for (const listener of this.listeners) {
      try {
        listener(payload);
      } catch (error) {
        this.log.debug({ seq: payload.seq, kind: payload.kind, err: error }, 'an event listener failed');
      }
    }
    const broker = this.broker;
    if (!broker) {
      this.counts.dropped += 1;
      this.log.debug({ seq: payload.seq, kind: payload.kind, reason: this.closed ? 'the event bus is closed' : 'no broker' }, 'event kept in the audit trail only');
      return;
    }
    try {
      broker.publishEvent(payload.kind, payload);
      this.counts.published += 1;
    } catch (error) {
      this.counts.dropped += 1;
      this.log.debug({ seq: payload.seq, kind: payload.kind, err: error }, 'event kept in the audit trail only');
    }
  }

  private logLine(event: WarrenEvent, override: EventLogOverride | undefined): void {
    try {
      const line = eventLogLine(event);
      const level = override?.level ?? line.level;
      this.log[level](override?.fields ?? line.fields, override?.message ?? line.message);
    } catch (error) {
      this.log.debug({ err: error, action: event.action }, 'cannot log an event');
    }
  }
}
