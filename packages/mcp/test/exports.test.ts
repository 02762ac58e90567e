import { expect, test } from 'vitest';
import * as mcp from '@warren/mcp';

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(mcp).sort()).toEqual([
    'COMPUTER_TOOLS',
    'MCP_FORBIDDEN',
    'MCP_TOOLS',
    'OPERATE_TOOLS',
    'READ_TOOLS',
    'argsDigest',
    'authorizeCall',
    'bridgeStdioToHttp',
    'createMcpHttpHandler',
    'createMcpServer',
    'urisOfEvent',
  ]);
});

test("events map to the resources they change: task.* the task and the board, agent.* the agent", () => {
  expect(mcp.urisOfEvent({ kind: 'task.assign', object: 'task:count-lines' })).toEqual(['warren://tasks/count-lines', 'warren://board']);
  expect(mcp.urisOfEvent({ kind: 'agent.start', object: 'agent:shell-1' })).toEqual(['warren://agents/shell-1']);
  expect(mcp.urisOfEvent({ kind: 'policy.decide', object: 'mcp:list_agents' })).toEqual([]);
});
