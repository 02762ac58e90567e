import type { FastifyInstance } from 'fastify';
import { onTestFinished } from 'vitest';
import { createHttpApp, type HttpAppOptions } from '@warren/http';
import { openTestPorts, type TestPorts } from './support.js';

/** The Host `inject()` sends by default. */
export const INJECT_HOST = 'localhost:80';

export interface TestApp {
  readonly app: FastifyInstance;
  readonly ports: TestPorts;
  /** `Authorization` headers of a viewer and an operator token. */
  readonly viewer: { authorization: string };
  readonly operator: { authorization: string };
}

/** An app over fresh test ports with a viewer (`vera`) and an operator (`olga`) token; closed after the test. */
export async function testApp(options: HttpAppOptions = {}): Promise<TestApp> {
  const ports = await openTestPorts();
  const app = await createHttpApp(ports, { allowedHosts: [INJECT_HOST], rateLimit: false, validateResponses: true, ...options });
  onTestFinished(async () => {
    await app.close();
    ports.close();
  });
  const viewer = ports.tokens.create({ name: 'vera', role: 'viewer' }, Date.now()).token;
  const operator = ports.tokens.create({ name: 'olga', role: 'operator' }, Date.now()).token;
  return { app, ports, viewer: { authorization: `Bearer ${viewer}` }, operator: { authorization: `Bearer ${operator}` } };
}
