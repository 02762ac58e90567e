import { describe, expect, it } from 'vitest';
import { LLM_SOCKET_NAME } from '@warren/llm-gateway';
import { LLM_SOCKET } from '../src/llm.js';

describe('the LLM channel', () => {
  it("names the gateway's socket as @warren/llm-gateway does (the channel does not import the gateway until an agent uses a model)", () => {
    expect(LLM_SOCKET).toBe(LLM_SOCKET_NAME);
  });
});
