import { describe, expect, it } from 'vitest';
import { AgentLedger } from '../src/agent-ledger.js';

describe('AgentLedger', () => {
  it('knows a subject empty only when it was seen empty with nothing published since', () => {
    const ledger = new AgentLedger();
    expect(ledger.knownEmpty('a')).toBe(false);
    ledger.sawEmpty('a', ledger.mark('a'));
    expect(ledger.knownEmpty('a')).toBe(true);
    expect(ledger.knownEmpty('b')).toBe(false);
    ledger.publishing('a')();
    expect(ledger.knownEmpty('a')).toBe(false);
  });

  it('ignores an empty answer when a publish started after the mark, or was in flight at it', () => {
    const ledger = new AgentLedger();
    const before = ledger.mark('a');
    const settle = ledger.publishing('a');
    ledger.sawEmpty('a', before);
    expect(ledger.knownEmpty('a')).toBe(false);
    // In flight: no mark at all (the publish may land after the answer).
    expect(ledger.mark('a')).toBeUndefined();
    ledger.sawEmpty('a', ledger.mark('a'));
    expect(ledger.knownEmpty('a')).toBe(false);
    settle();
    settle(); // settling twice counts once
    const after = ledger.mark('a');
    expect(after).toBe(1);
    ledger.sawEmpty('a', after);
    expect(ledger.knownEmpty('a')).toBe(true);
  });

  it('keeps two publishes in flight apart', () => {
    const ledger = new AgentLedger();
    const first = ledger.publishing('a');
    const second = ledger.publishing('a');
    first();
    expect(ledger.mark('a')).toBeUndefined();
    second();
    expect(ledger.mark('a')).toBe(2);
  });

  it('forgets what it saw when the connection is lost, and calls consumers kept before that stale', () => {
    const ledger = new AgentLedger();
    ledger.sawEmpty('a', ledger.mark('a'));
    ledger.keep('a');
    ledger.keep('b');
    expect(ledger.takeKept('a')).toBe('kept');
    expect(ledger.takeKept('a')).toBe('unknown');
    ledger.inboxDeleted('c', ledger.inboxMark('c'));
    ledger.forget();
    expect(ledger.knownEmpty('a')).toBe(false);
    expect(ledger.inboxKnownGone('c')).toBe(false);
    expect(ledger.takeKept('b')).toBe('stale');
    ledger.keep('d');
    expect(ledger.takeAllKept()).toEqual(['d']);
    expect(ledger.takeKept('d')).toBe('unknown');
  });

  it('knows an inbox consumer gone only when no make started since the delete did', () => {
    const ledger = new AgentLedger();
    const mark = ledger.inboxMark('a');
    ledger.inboxMade('a');
    ledger.inboxDeleted('a', mark);
    expect(ledger.inboxKnownGone('a')).toBe(false);
    ledger.inboxDeleted('a', ledger.inboxMark('a'));
    expect(ledger.inboxKnownGone('a')).toBe(true);
    ledger.inboxMade('a');
    expect(ledger.inboxKnownGone('a')).toBe(false);
  });
});
