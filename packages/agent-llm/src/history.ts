/**
 * The persistent conversation: the Chat Completions messages of earlier tasks, kept in the agent's
 * home so that the next task continues the same conversation (the home survives `sleep`, and goes
 * with `autodelete`).
 *
 * File: `$HOME/.warren/llm/history.json`, `{ "version": 1, "sessionId": string, "messages": [...] }`
 * where `messages` are Chat Completions message objects (`user`, `assistant` with optional
 * `tool_calls`, `tool`); the system prompt is not stored. Written atomically (a temporary file in
 * the same directory, fsync, rename), bounded by {@link trimHistory}.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';

/** The history file, relative to `$HOME`. */
export const HISTORY_PATH = '.warren/llm/history.json';

/** The most messages kept between tasks. */
export const HISTORY_MAX_MESSAGES = 200;

/** The most bytes of messages (as JSON, UTF-8) kept between tasks: 256 KiB. */
export const HISTORY_MAX_BYTES = 256 * 1024;

/** The version of the file's format. */
const FORMAT_VERSION = 1;

/** A conversation loaded from (or about to be written to) the history file. */
export interface History {
  /** Names the conversation; the same for every task while the file lives. */
  readonly sessionId: string;
  readonly messages: ChatCompletionMessageParam[];
}

/** What {@link loadHistory} found. */
export type LoadedHistory =
  | { readonly state: 'fresh'; readonly history: History }
  | { readonly state: 'resumed'; readonly history: History }
  /** The file could not be used; it was renamed to `setAsidePath` and a fresh history begins. */
  | { readonly state: 'set-aside'; readonly history: History; readonly reason: string; readonly setAsidePath: string };

/** Limits of {@link trimHistory}. */
export interface HistoryLimits {
  /** Default {@link HISTORY_MAX_MESSAGES}. */
  readonly maxMessages?: number;
  /** Default {@link HISTORY_MAX_BYTES}. */
  readonly maxBytes?: number;
}

const ROLES = new Set(['user', 'assistant', 'tool', 'system', 'developer']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Why `value` is not a usable history file's content, or undefined. */
function formatProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not a JSON object';
  if (value.version !== FORMAT_VERSION) return `version must be ${FORMAT_VERSION}, got ${JSON.stringify(value.version) ?? 'nothing'}`;
  if (typeof value.sessionId !== 'string' || value.sessionId === '') return 'sessionId must be a non-empty string';
  if (!Array.isArray(value.messages)) return 'messages must be an array';
  for (const [i, message] of value.messages.entries()) {
    if (!isRecord(message) || typeof message.role !== 'string' || !ROLES.has(message.role)) return `messages[${i}] is not a chat message`;
    if (message.role === 'tool' && typeof message.tool_call_id !== 'string') return `messages[${i}] is a tool result without tool_call_id`;
  }
  return undefined;
}

const sizeOf = (messages: readonly ChatCompletionMessageParam[]): number => Buffer.byteLength(JSON.stringify(messages));

/**
 * Bounds a conversation: drops whole exchanges from the front (an exchange starts at a `user`
 * message, so an assistant's tool calls are never parted from their results) until at most
 * `maxMessages` messages and `maxBytes` bytes remain. When even the last exchange is over a limit,
 * only its user message and, if the exchange ended in a plain answer, that answer remain, each
 * content cut to fit.
 * @returns a new array (the input is not changed).
 */
export function trimHistory(messages: readonly ChatCompletionMessageParam[], limits: HistoryLimits = {}): ChatCompletionMessageParam[] {
  const maxMessages = limits.maxMessages ?? HISTORY_MAX_MESSAGES;
  const maxBytes = limits.maxBytes ?? HISTORY_MAX_BYTES;
  const fits = (list: readonly ChatCompletionMessageParam[]): boolean => list.length <= maxMessages && sizeOf(list) <= maxBytes;
  if (fits(messages)) return [...messages];
  const starts = messages.flatMap((m, i) => (m.role === 'user' ? [i] : []));
  for (const start of starts) {
    const rest = messages.slice(start);
    if (fits(rest)) return rest;
  }
  const lastStart = starts.at(-1);
  if (lastStart === undefined) return [];
  const user = messages[lastStart]!;
  const last = messages.at(-1)!;
  const answer = last !== user && last.role === 'assistant' && !('tool_calls' in last && last.tool_calls?.length) ? last : undefined;
  const kept = answer ? [user, answer] : [user];
  const perMessage = Math.max(0, Math.floor(maxBytes / kept.length) - 256);
  return kept
    .map((m) => {
      const text = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
      if (Buffer.byteLength(text) <= perMessage) return m;
      const cut = `${Buffer.from(text).subarray(0, perMessage).toString('utf8').replace(/\uFFFD$/, '')}\n[cut to keep the history bounded]`;
      return { ...m, content: cut };
    })
    .slice(0, Math.max(0, maxMessages));
}

/**
 * Loads the history from `$HOME/{@link HISTORY_PATH}`. A missing file starts a fresh conversation
 * (new session id); a file that is not JSON or not in the format is renamed to
 * `history.json.corrupt-<ms since epoch>` and a fresh conversation begins. What is loaded is
 * trimmed to the limits.
 * @throws only when the history directory cannot be read or the corrupt file cannot be renamed.
 */
export function loadHistory(home: string, limits: HistoryLimits = {}, nowMs = Date.now()): LoadedHistory {
  const path = join(home, HISTORY_PATH);
  const fresh = (): History => ({ sessionId: randomUUID(), messages: [] });
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'fresh', history: fresh() };
    throw error;
  }
  let reason: string | undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
    reason = formatProblem(parsed);
  } catch (error) {
    reason = `not JSON: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (reason !== undefined) {
    const setAsidePath = `${path}.corrupt-${nowMs}`;
    renameSync(path, setAsidePath);
    return { state: 'set-aside', history: fresh(), reason, setAsidePath };
  }
  const valid = parsed as { sessionId: string; messages: ChatCompletionMessageParam[] };
  return { state: 'resumed', history: { sessionId: valid.sessionId, messages: trimHistory(valid.messages, limits) } };
}

/**
 * Writes the history, trimmed, atomically: a temporary file beside it, fsync, rename over the old
 * one, so a crash leaves the old file or the new one, never half of one. Makes `$HOME/.warren/llm`
 * (mode 0700) when missing.
 * @throws when the file cannot be written (disk full, read-only home).
 */
export function saveHistory(home: string, history: History, limits: HistoryLimits = {}): void {
  const path = join(home, HISTORY_PATH);
  const dir = join(home, '.warren', 'llm');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const body = `${JSON.stringify({ version: FORMAT_VERSION, sessionId: history.sessionId, messages: trimHistory(history.messages, limits) })}\n`;
  const temp = `${path}.tmp-${process.pid}`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}
