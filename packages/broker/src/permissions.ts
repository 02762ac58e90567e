import { ConfigError } from '@warren/core';
import { nativeUserNkey } from './nkey.js';
import type { NatsPermissions } from './server.js';
import { assertAgentName, assertTopicName, type BrokerNamespace } from './subjects.js';

/**
 * Per-agent NATS credentials and permissions for agents that connect to NATS directly. The
 * supervisor computes the grants from the policy; {@link agentNatsPermissions} turns them into the
 * publish and subscribe allow-lists nats-server enforces itself (see `subjects.ts` for the
 * subjects), so an agent cannot read another agent's inbox or speak as another agent even if the
 * supervisor erred.
 */

/** What the policy grants one agent on the broker; `'*'` means every agent or every topic. */
export interface AgentNatsGrants {
  /** The agents it may message (policy `(agent, agent:<to>, message)`). */
  readonly messageTo: readonly string[] | '*';
  /** The topics it may publish to (policy `(agent, topic:<t>, publish)`). */
  readonly publishTopics: readonly string[] | '*';
  /** The topics it may subscribe to (policy `(agent, topic:<t>, subscribe)`). */
  readonly subscribeTopics: readonly string[] | '*';
}

function names(value: readonly string[] | '*', check: (name: string) => string, source: string): string[] | '*' {
  if (value === '*') return '*';
  if (!Array.isArray(value)) throw new ConfigError(source, `must be an array of names or '*'`);
  return [...new Set((value as readonly string[]).map((name) => check(name)))].sort();
}

/** Options of {@link agentNatsPermissions}. */
export interface AgentNatsPermissionOptions {
  /**
   * The agent's runner and gateway run outside the supervisor (a Kubernetes pod) and speak to the
   * broker themselves: also allow what they need (see {@link agentNatsPermissions}). Default false.
   */
  readonly runner?: boolean;
}

/**
 * The allow-lists of agent `agent` in namespace `ns` (`<p>` its subject prefix):
 *
 * - publish: its outbox to each agent it may message (`<p>.send.<agent>.<to>`) and replies to them
 *   (`<p>.reply.<to>.<agent>.*`); its topics (`<p>.topic.<t>.<agent>`); its presence request
 *   (`<p>.presence.<agent>`); and of the JetStream API only what pulling and acknowledging its own
 *   inbox consumer needs (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<msg-agent>`,
 *   `$JS.API.CONSUMER.INFO.<stream>.<msg-agent>`, `$JS.ACK.<stream>.<msg-agent>.>`);
 * - subscribe: its own inbox prefix (`_INBOX.<p>.agent.<agent>.>`), replies to it
 *   (`<p>.reply.<agent>.>`) and the topics it may subscribe to (`<p>.topic.<t>.*`).
 *
 * With `{ runner: true }` also what the agent's gateway outside the supervisor needs:
 * - publish: its channel's events and requests (`<p>.chan.<agent>.ev`, `<p>.chan.<agent>.rpc`), its
 *   results (`<p>.result.<agent>`, a JetStream publish whose ack comes to its inbox) and progress
 *   (`<p>.progress.<agent>.*`), and pulling and acknowledging its own assign consumer
 *   (`$JS.API.CONSUMER.MSG.NEXT.<assign-stream>.<assign-agent>`, `…INFO…`, `$JS.ACK.<assign-stream>.<assign-agent>.>`);
 * - subscribe: its channel's control subject (`<p>.chan.<agent>.ctl`).
 * The supervisor creates the assign consumer (the agent cannot create consumers).
 *
 * Nothing else: no consumer creation or deletion, no stream reads, no other agent's inbox, no
 * subject where it would speak as another agent. `'*'` grants become one wildcard token.
 * @throws {InvalidNameError} for an invalid agent or topic name. @throws {ConfigError} for a grant that is not a list or `'*'`.
 */
export function agentNatsPermissions(
  ns: BrokerNamespace,
  agent: string,
  grants: AgentNatsGrants,
  options: AgentNatsPermissionOptions = {},
): NatsPermissions {
  const self = assertAgentName(agent);
  const p = ns.subjectPrefix;
  const to = names(grants.messageTo, assertAgentName, 'agentNatsPermissions messageTo');
  const pub = names(grants.publishTopics, assertTopicName, 'agentNatsPermissions publishTopics');
  const sub = names(grants.subscribeTopics, assertTopicName, 'agentNatsPermissions subscribeTopics');
  const stream = ns.messagesStream;
  const durable = ns.messageConsumerName(self);
  const publish = [
    ...(to === '*' ? [`${p}.send.${self}.*`, `${p}.reply.*.${self}.*`] : to.flatMap((t) => [`${p}.send.${self}.${t}`, `${p}.reply.${t}.${self}.*`])),
    ...(pub === '*' ? [`${p}.topic.*.${self}`] : pub.map((t) => `${p}.topic.${t}.${self}`)),
    ns.presenceSubject(self),
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
    `$JS.API.CONSUMER.INFO.${stream}.${durable}`,
    `$JS.ACK.${stream}.${durable}.>`,
  ];
  const subscribe = [
    `${ns.agentInboxPrefix(self)}.>`,
    `${p}.reply.${self}.>`,
    ...(sub === '*' ? [`${p}.topic.*.*`] : sub.map((t) => `${p}.topic.${t}.*`)),
  ];
  if (options.runner === true) {
    const assign = ns.assignConsumerName(self);
    publish.push(
      `${p}.chan.${self}.ev`,
      `${p}.chan.${self}.rpc`,
      ns.resultSubject(self),
      `${ns.progressPrefix}.${self}.*`,
      `$JS.API.CONSUMER.MSG.NEXT.${ns.assignStream}.${assign}`,
      `$JS.API.CONSUMER.INFO.${ns.assignStream}.${assign}`,
      `$JS.ACK.${ns.assignStream}.${assign}.>`,
    );
    subscribe.push(`${p}.chan.${self}.ctl`);
  }
  return { publish: { allow: publish }, subscribe: { allow: subscribe } };
}

/** An agent's NKey pair: the public key the server knows it by, and the seed only the agent holds. */
export interface AgentNkey {
  /** `U…` (56 characters): goes into the server's users. */
  readonly publicKey: string;
  /** `SU…` (58 characters): goes into the agent's `~/.warren/nats.json`, never anywhere else. */
  readonly seed: string;
}

/**
 * Makes a fresh NKey user pair (Ed25519, https://docs.nats.io/running-a-nats-service/configuration/securing_nats/auth_intro/nkey_auth)
 * with Node's native Ed25519 (see `nkey.ts`).
 */
export function createAgentNkey(): AgentNkey {
  return nativeUserNkey();
}

/** The contents of an agent's `~/.warren/nats.json`: what it needs to connect to NATS as itself. */
export interface AgentNatsConfig {
  /** Server URLs (`nats://127.0.0.1:4222`). */
  readonly servers: readonly string[];
  /** Its NKey seed (`SU…`), for nats.js `nkeyAuthenticator`. */
  readonly nkeySeed: string;
  /** `_INBOX.<p>.agent.<name>`, for nats.js `inboxPrefix` (the only inboxes it may subscribe to). */
  readonly inboxPrefix: string;
  /** `<p>`: `warren` or `warren.<instance>`. */
  readonly subjectPrefix: string;
}

/**
 * The `~/.warren/nats.json` of `agent`.
 * @throws {InvalidNameError} for an invalid agent name. @throws {ConfigError} for a seed that is not a user seed.
 */
export function agentNatsConfig(ns: BrokerNamespace, agent: string, servers: readonly string[], seed: string): AgentNatsConfig {
  if (!/^SU[A-Z2-7]{56}$/.test(seed)) throw new ConfigError('agentNatsConfig seed', 'must be an NKey user seed (SU and 56 base32 characters)');
  return { servers: [...servers], nkeySeed: seed, inboxPrefix: ns.agentInboxPrefix(agent), subjectPrefix: ns.subjectPrefix };
}
