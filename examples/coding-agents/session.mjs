// The stand-in providers' side of the example when no real key is set: for each card, the session
// a coding agent would have, in the tool vocabulary of whichever agent asks (Claude Code's Bash,
// Codex's exec_command, opencode's bash, Warren's run_command): run one shell command that does
// the card's work in the task's worktree, then answer with what it did.

/** The shell command that does each card's work, by a phrase of its title. */
const WORK = [
  ['greeting module', "printf 'export const greet = (name) => `Hello, ${name}!`;\\n' > greet.mjs && node -e \"import('./greet.mjs').then((m) => console.log(m.greet('Warren')))\"", 'Added greet.mjs; greet("Warren") returns "Hello, Warren!".'],
  ['Count the lines', "for f in *.mjs; do printf '%s %s\\n' \"$f\" \"$(wc -l < \"$f\")\"; done > LINES.md && cat LINES.md", 'Wrote LINES.md with the line count of each .mjs file.'],
  ['changelog entry', "printf '# Changelog\\n\\n## 0.1.0\\n\\n- main.mjs prints a greeting for the name it is given.\\n' > CHANGELOG.md && cat CHANGELOG.md", 'Started CHANGELOG.md with the 0.1.0 entry.'],
  ['Describe the repository', "printf 'Greeter is a tiny example repository. main.mjs prints a greeting for a name. Agents of the Warren example work on it.\\n' > SUMMARY.md && cat SUMMARY.md", 'Wrote SUMMARY.md describing the repository in three sentences.'],
];

/** The shell tool in a request's tool list, and how its arguments are shaped. */
function shellTool(tools) {
  for (const tool of tools) {
    const name = tool.name ?? tool.function?.name;
    if (name === 'Bash' || name === 'bash' || name === 'run_command') return { name, args: (command) => ({ command, description: 'Do the task' }) };
    if (name === 'exec_command') return { name, args: (cmd) => ({ cmd }) };
    if (name === 'shell') return { name, args: (command) => ({ command: ['bash', '-lc', command] }) };
  }
  return undefined;
}

/** Tool results the conversation holds so far (Anthropic tool_result blocks, Responses *_output items, Chat tool messages). */
function toolResults(request) {
  const body = request.body ?? {};
  if (request.wire === 'anthropic-messages') {
    return (body.messages ?? []).flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((c) => c.type === 'tool_result').length;
  }
  if (request.wire === 'openai-responses') return (Array.isArray(body.input) ? body.input : []).filter((i) => /_output$/.test(i.type ?? '')).length;
  return (body.messages ?? []).filter((m) => m.role === 'tool').length;
}

/**
 * The fake LLM's script (see `startFakeLlm` of `@warren/testing`): a request without tools (a
 * title, a summary) gets a short text; otherwise the card's command, then its answer.
 * @param {import('@warren/testing').FakeLlmRequest} request
 * @returns {import('@warren/testing').FakeTurn}
 */
export function exampleSession(request) {
  const body = request.body ?? {};
  const usage = { inputTokens: 900, outputTokens: 60 };
  const tools = Array.isArray(body.tools) ? body.tools : [];
  const tool = shellTool(tools);
  if (!tool) return { text: 'Coding task', usage: { inputTokens: 40, outputTokens: 3 } };
  const text = JSON.stringify(body);
  const work = WORK.find(([phrase]) => text.includes(phrase));
  if (!work) return { text: 'This card is not one of the example\'s; nothing to do.', usage };
  // Each conversation runs its one command, then answers (a resumed one counts from its own start).
  if (toolResults(request) % 2 === 0 && !text.includes(work[2])) return { toolCalls: [{ name: tool.name, arguments: tool.args(work[1]) }], usage };
  return { text: work[2], usage };
}
