import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { describe, expect, it, onTestFinished } from 'vitest';
import { taskRow } from '../../http/test/support.js';
import { mcpTestServer, type McpTestServer } from './support.js';

type Era = 'legacy' | '2026-07-28';

async function connect(t: McpTestServer, token: string, era: Era): Promise<Client> {
  const client = new Client({ name: 'warren-test', version: '1.0.0' }, era === 'legacy' ? {} : { versionNegotiation: { mode: { pin: era } } });
  const transport = new StreamableHTTPClientTransport(t.url, { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  onTestFinished(() => client.close());
  return client;
}

for (const era of ['legacy', '2026-07-28'] as const) {
  describe(`the SDK's client over HTTP (${era === 'legacy' ? '2025' : era} protocol)`, () => {
    it('lists the tools an operator may call, with schemas and annotations, and calls the reads', async () => {
      const t = await mcpTestServer();
      t.ports.registry.state.putTask(taskRow('count-lines'));
      const client = await connect(t, t.operatorToken, era);
      const { tools } = await client.listTools();
      const names = tools.map((x) => x.name).sort();
      expect(names).toEqual(
        ['cancel_task', 'create_task', 'describe_agent', 'describe_task', 'get_board', 'list_agents', 'list_directory', 'list_tasks', 'list_templates', 'read_file', 'retry_task', 'run_command', 'search_audit', 'send_message', 'sleep_agent', 'start_agent', 'stop_agent', 'wake_agent', 'write_file'].sort(),
      );
      for (const tool of tools) {
        expect(tool.inputSchema.type, tool.name).toBe('object');
        expect(tool.outputSchema?.type, tool.name).toBe('object');
        expect(typeof tool.annotations?.readOnlyHint, tool.name).toBe('boolean');
      }
      expect(tools.find((x) => x.name === 'stop_agent')?.annotations?.destructiveHint).toBe(true);
      expect(tools.find((x) => x.name === 'list_agents')?.annotations?.readOnlyHint).toBe(true);

      const agents = await client.callTool({ name: 'list_agents', arguments: { capability: 'shell' } });
      expect(agents.isError).toBeFalsy();
      expect((agents.structuredContent as { agents: { name: string }[] }).agents.map((a) => a.name)).toEqual(['shell-1']);
      const tasks = await client.callTool({ name: 'list_tasks', arguments: { status: 'ready' } });
      expect((tasks.structuredContent as { tasks: { id: string }[] }).tasks.map((x) => x.id)).toEqual(['count-lines']);
      const task = await client.callTool({ name: 'describe_task', arguments: { id: 'count-lines' } });
      expect((task.structuredContent as { id: string; audit: unknown[] }).id).toBe('count-lines');
      const missing = await client.callTool({ name: 'describe_task', arguments: { id: 'nope' } });
      expect(missing.isError).toBe(true);
      expect(JSON.stringify(missing.content)).toContain("no task 'nope'");
    });

    it('creates a task, queues a command, reads resources and gets the prompts', async () => {
      const t = await mcpTestServer();
      const client = await connect(t, t.operatorToken, era);
      const created = await client.callTool({ name: 'create_task', arguments: { title: 'Count lines', body: 'wc -l', capabilities: ['shell'] } });
      expect(created.structuredContent).toEqual({ id: 'count-lines', path: 'count-lines.md' });
      t.ports.registry.state.putTask(taskRow('count-lines'));
      const cancel = await client.callTool({ name: 'cancel_task', arguments: { id: 'count-lines' } });
      const command = (cancel.structuredContent as { command: number }).command;
      expect(t.ports.registry.commands.get(command)).toMatchObject({ kind: 'task.cancel', target: 'count-lines', requestedBy: 'user:olga', state: 'queued' });
      const sent = await client.callTool({ name: 'send_message', arguments: { to: 'shell-1', body: 'hello' } });
      expect(sent.structuredContent).toEqual({ id: 'm-1' });
      expect(t.sent).toEqual([{ principal: 'user:olga', to: 'shell-1', body: 'hello' }]);

      const board = await client.readResource({ uri: 'warren://board' });
      const boardJson = JSON.parse((board.contents[0] as { text: string }).text) as { cards: { id: string }[] };
      expect(boardJson.cards.map((c) => c.id)).toEqual(['count-lines']);
      const task = await client.readResource({ uri: 'warren://tasks/count-lines' });
      expect((JSON.parse((task.contents[0] as { text: string }).text) as { id: string }).id).toBe('count-lines');
      const agent = await client.readResource({ uri: 'warren://agents/shell-1' });
      expect((JSON.parse((agent.contents[0] as { text: string }).text) as { name: string }).name).toBe('shell-1');
      const templates = await client.listResourceTemplates();
      expect(templates.resourceTemplates.map((r) => r.uriTemplate).sort()).toEqual(['warren://agents/{name}', 'warren://tasks/{id}']);

      t.ports.policy.addRoleForSubject('shell-1', 'template:shell'); // as the supervisor does while it runs
      const prompts = await client.listPrompts();
      expect(prompts.prompts.map((p) => p.name).sort()).toEqual(['triage_board', 'why_not_assigned']);
      const why = await client.getPrompt({ name: 'why_not_assigned', arguments: { task: 'count-lines' } });
      const text = (why.messages[0]!.content as { text: string }).text;
      expect(text).toContain("task 'count-lines'");
      expect(text).toContain('p, role:worker, task:*, assign, allow');
      const triage = await client.getPrompt({ name: 'triage_board' });
      expect((triage.messages[0]!.content as { text: string }).text).toContain('count-lines');
    });

    it("runs a command on an agent's computer and finds the file it wrote there next time", async () => {
      const t = await mcpTestServer();
      const client = await connect(t, t.operatorToken, era);
      const run = await client.callTool({ name: 'run_command', arguments: { agent: 'shell-1', command: 'echo kept > notes.txt && echo done' } });
      expect(run.structuredContent).toMatchObject({ exitCode: 0, stdout: 'done\n' });
      const again = await connect(t, t.operatorToken, era);
      const read = await again.callTool({ name: 'read_file', arguments: { agent: 'shell-1', path: 'notes.txt' } });
      expect(read.structuredContent).toMatchObject({ content: 'kept\n', encoding: 'utf8' });
      const list = await again.callTool({ name: 'list_directory', arguments: { agent: 'shell-1' } });
      expect((list.structuredContent as { entries: { name: string }[] }).entries.map((e) => e.name)).toContain('notes.txt');
      const outside = await again.callTool({ name: 'write_file', arguments: { agent: 'shell-1', path: '../escape.txt', content: 'x' } });
      expect(outside.isError).toBe(true);
      expect(JSON.stringify(outside.content)).toContain('leaves the home');
    });
  });
}

describe('notifications', () => {
  it('a 2026-07-28 client listening on a task resource hears it change when its event is committed', async () => {
    const t = await mcpTestServer();
    const client = await connect(t, t.viewerToken, '2026-07-28');
    const updated: string[] = [];
    client.setNotificationHandler('notifications/resources/updated', (n) => {
      updated.push(n.params.uri);
    });
    const subscription = await client.listen({ resourceSubscriptions: ['warren://tasks/count-lines'] });
    onTestFinished(() => subscription.close?.());
    t.ports.emit({ actor: 'supervisor', action: 'task.assign', object: 'task:count-lines', decision: 'allow', details: { agent: 'shell-1' } });
    await expect.poll(() => updated, { timeout: 20_000 }).toContain('warren://tasks/count-lines');
  });
});
