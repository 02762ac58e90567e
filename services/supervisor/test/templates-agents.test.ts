import { describe, expect, it } from 'vitest';
import { parseTemplate } from '../src/templates.js';

const coder = `name: coder
capabilities: [code]
runtime:
  kind: claude-code
  provider: anthropic
  model: sonnet
  timeout: 20m
llm:
  providers: [openai]
  budget:
    task: { tokens: 200000, cost: 2.5 }
    templateDay: { cost: 40 }
home:
  seed:
    - { path: CLAUDE.md, source: coder/CLAUDE.md }
    - { path: .config/persona.md, content: "You are careful." }
repository: { source: ../app, base: main }
secrets:
  env: { GH_TOKEN: GITHUB_TOKEN }
agents:
  coder-2: { model: opus, resources: { memory: 2GiB } }
`;

describe('templates of agent runtimes', () => {
  it('reads the runtime, the gateway rules, seeds, repository, secret variables and per-agent overrides', () => {
    const t = parseTemplate(coder, 'agents/coder.yaml', '/srv/agents');
    expect(t.runtime).toEqual({ kind: 'claude-code', provider: 'anthropic', model: 'sonnet', maxTurns: null, mcp: false });
    expect(t.taskTimeoutMs).toBe(20 * 60_000);
    expect(t.llm).toEqual({
      providers: ['anthropic', 'openai'],
      budget: { task: { tokens: 200_000, costUsd: 2.5 }, agentDay: { tokens: null, costUsd: null }, templateDay: { tokens: null, costUsd: 40 } },
    });
    expect(t.homeSeed).toEqual([
      { path: 'CLAUDE.md', sourcePath: '/srv/agents/coder/CLAUDE.md' },
      { path: '.config/persona.md', content: 'You are careful.' },
    ]);
    expect(t.repository).toEqual({ source: '/srv/app', base: 'main' });
    expect(parseTemplate(coder.replace('../app', 'https://git.example/app.git'), 'agents/coder.yaml', '/srv/agents').repository?.source).toBe('https://git.example/app.git');
    expect(parseTemplate(coder.replace('../app', 'git@host:team/app.git'), 'agents/coder.yaml', '/srv/agents').repository?.source).toBe('git@host:team/app.git');
    expect(t.secretEnv).toEqual({ GH_TOKEN: 'GITHUB_TOKEN' });
    expect(t.agentOverrides).toEqual({ 'coder-2': { model: 'opus', resources: { memoryMaxBytes: 2 * 1024 ** 3 } } });
  });

  it('gives the llm runtime its defaults and a shell template no gateway', () => {
    const t = parseTemplate('name: thinker\ncapabilities: [think]\nruntime: { kind: llm, provider: local, model: qwen }\n', 'agents/thinker.yaml');
    expect(t.runtime).toEqual({ kind: 'llm', provider: 'local', model: 'qwen', maxTurns: 20 });
    expect(t.llm?.providers).toEqual(['local']);
    expect(parseTemplate('name: sh\ncapabilities: [shell]\nruntime: { kind: shell }\n', 'agents/sh.yaml').llm).toBeNull();
  });

  it('refuses, at their lines: an llm runtime without a model, a seed leaving the home, an override of another template, a bad secret name', () => {
    const cases: [string, RegExp][] = [
      ['name: t\ncapabilities: [x]\nruntime: { kind: llm, provider: local }\n', /t\.yaml:3: 'runtime\.model'/],
      ['name: t\ncapabilities: [x]\nruntime: { kind: codex, provider: openai }\nhome:\n  seed:\n    - { path: ../../etc/passwd, content: x }\n', /t\.yaml:5: 'home\.seed\.path' '\.\.\/\.\.\/etc\/passwd' must be a path inside the home/],
      ['name: t\ncapabilities: [x]\nruntime: { kind: codex, provider: openai }\nagents:\n  other-1: { model: m }\n', /t\.yaml:5: 'agents\.other-1' is not an agent of template 't'/],
      ['name: t\ncapabilities: [x]\nruntime: { kind: opencode, provider: openai }\nsecrets:\n  env: { TOKEN: lower }\n', /t\.yaml:5: 'secrets\.env\.TOKEN'/],
      ['name: t\ncapabilities: [x]\nruntime: { kind: codex, provider: openai }\nhome:\n  seed:\n    - { path: a, content: x, source: b }\n', /needs exactly one of source and content/],
    ];
    for (const [text, message] of cases) expect(() => parseTemplate(text, 't.yaml')).toThrow(message);
  });
});
