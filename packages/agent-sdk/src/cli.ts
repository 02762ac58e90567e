/**
 * `warren-bus`: the agent's bus from a shell, for programs of a task (`shell` and `exec` runtimes, a
 * coding agent's shell tool). Output is JSON, one value per line (NDJSON).
 *
 * ```
 * warren-bus send <to> <json-or-text> [--id ID]        → {"id":"…"}
 * warren-bus recv [--max N] [--wait MS] [--no-ack]     → one message per line
 * warren-bus request <to> <json-or-text> [--timeout MS] → the reply
 * warren-bus reply <to> <id> <json-or-text>            → {"id":"…"}
 * warren-bus publish <topic> <json-or-text>            → {"id":"…"}
 * warren-bus subscribe <topic> [--count N]             → one message per line, until N came or the bus ends it
 * warren-bus presence                                  → one agent per line
 * ```
 *
 * A body that parses as JSON is sent as that JSON value, anything else as a string.
 * Exit codes: 0 done, 1 refused or failed (the reason on stderr), 2 usage (on stderr).
 */
import { parseArgs } from 'node:util';
import { BusError, connectBus, type AgentBus } from './client.js';

/** Exit code: done. */
export const EXIT_OK = 0;
/** Exit code: the bus refused the call or could not be reached. */
export const EXIT_REFUSED = 1;
/** Exit code: the command line is wrong. */
export const EXIT_USAGE = 2;

/** The usage text. */
export const USAGE = `usage: warren-bus <command> [options]
  send <to> <json-or-text> [--id ID]          send a message to an agent's inbox
  recv [--max N] [--wait MS] [--no-ack]       take messages from this agent's inbox (NDJSON)
  request <to> <json-or-text> [--timeout MS]  send a request and print the reply
  reply <to> <id> <json-or-text>              answer request <id> from <to>
  publish <topic> <json-or-text>              publish on a topic
  subscribe <topic> [--count N]               print a topic's messages as they come (NDJSON)
  presence                                    the agents this agent may message (NDJSON)
The bus socket is $WARREN_BUS_SOCKET (default /run/warren/bus.sock).
Exit codes: 0 done, 1 refused or failed, 2 usage.`;

/** Where the CLI writes, and what it reads. */
export interface CliIo {
  /** Writes one chunk of standard output. */
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** The bus socket; default `$WARREN_BUS_SOCKET`, else `/run/warren/bus.sock`. */
  readonly socketPath?: string;
  /** Ends a running `subscribe` (SIGINT in the program). */
  readonly signal?: AbortSignal;
}

class UsageError extends Error {}

/** The body argument: its JSON value when it parses, else the text itself. */
export function parseBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function integer(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return n;
}

function positionals(command: string, got: readonly string[], names: readonly string[]): string[] {
  if (got.length !== names.length) {
    throw new UsageError(`${command} takes ${names.length === 0 ? 'no arguments' : names.map((n) => `<${n}>`).join(' ')}, got ${got.length === 0 ? 'none' : got.map((g) => JSON.stringify(g)).join(' ')}`);
  }
  return [...got];
}

/**
 * Runs one command line (without `node` and the program).
 * @returns the exit code: {@link EXIT_OK}, {@link EXIT_REFUSED} or {@link EXIT_USAGE}.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const line = (value: unknown): void => io.stdout(`${JSON.stringify(value)}\n`);
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout)(`${USAGE}\n`);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  let bus: AgentBus | undefined;
  const busNow = (): AgentBus => (bus ??= connectBus(io.socketPath !== undefined ? { socketPath: io.socketPath } : {}));
  try {
    const parse = <O extends Record<string, { type: 'string' | 'boolean' }>>(options: O) =>
      parseArgs({ args: [...rest], options, allowPositionals: true, strict: true });
    switch (command) {
      case 'send': {
        const { values, positionals: p } = parse({ id: { type: 'string' } });
        const [to, body] = positionals('send', p, ['to', 'json-or-text']);
        line(await busNow().send(to!, parseBody(body!), values.id !== undefined ? { id: values.id } : {}));
        return EXIT_OK;
      }
      case 'recv': {
        const { values, positionals: p } = parse({ max: { type: 'string' }, wait: { type: 'string' }, 'no-ack': { type: 'boolean' } });
        positionals('recv', p, []);
        const max = integer('max', values.max, 1, 100);
        const waitMs = integer('wait', values.wait, 0, 30_000);
        const messages = await busNow().receive({ ...(max !== undefined ? { max } : {}), ...(waitMs !== undefined ? { waitMs } : {}), ack: values['no-ack'] !== true });
        for (const m of messages) line(m);
        return EXIT_OK;
      }
      case 'request': {
        const { values, positionals: p } = parse({ timeout: { type: 'string' } });
        const [to, body] = positionals('request', p, ['to', 'json-or-text']);
        const timeoutMs = integer('timeout', values.timeout, 100, 300_000);
        line(await busNow().request(to!, parseBody(body!), timeoutMs !== undefined ? { timeoutMs } : {}));
        return EXIT_OK;
      }
      case 'reply': {
        const { positionals: p } = parse({});
        const [to, id, body] = positionals('reply', p, ['to', 'id', 'json-or-text']);
        line(await busNow().reply({ from: to!, id: id! }, parseBody(body!)));
        return EXIT_OK;
      }
      case 'publish': {
        const { positionals: p } = parse({});
        const [topic, body] = positionals('publish', p, ['topic', 'json-or-text']);
        line(await busNow().publish(topic!, parseBody(body!)));
        return EXIT_OK;
      }
      case 'subscribe': {
        const { values, positionals: p } = parse({ count: { type: 'string' } });
        const [topic] = positionals('subscribe', p, ['topic']);
        const count = integer('count', values.count, 1, Number.MAX_SAFE_INTEGER);
        const subscription = await busNow().subscribe(topic!);
        const stop = (): void => subscription.close();
        io.signal?.addEventListener('abort', stop, { once: true });
        let seen = 0;
        try {
          if (io.signal?.aborted !== true) {
            for await (const message of subscription) {
              line(message);
              seen += 1;
              if (count !== undefined && seen >= count) break;
            }
          }
        } finally {
          io.signal?.removeEventListener('abort', stop);
          subscription.close();
        }
        if (subscription.endReason !== null && (count === undefined || seen < count)) {
          io.stderr(`warren-bus: subscribe ${topic}: ${subscription.endReason}\n`);
          return EXIT_REFUSED;
        }
        return EXIT_OK;
      }
      case 'presence': {
        const { positionals: p } = parse({});
        positionals('presence', p, []);
        for (const agent of await busNow().presence()) line(agent);
        return EXIT_OK;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof BusError) {
      io.stderr(`warren-bus: ${command}: ${error.message} (${error.code}${error.status > 0 ? `, HTTP ${error.status}` : ''})\n`);
      return EXIT_REFUSED;
    }
    if (error instanceof UsageError || (error as { code?: unknown }).code?.toString().startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`warren-bus: ${(error as Error).message}\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    io.stderr(`warren-bus: ${command}: ${(error as Error).message ?? String(error)}\n`);
    return EXIT_REFUSED;
  }
}
