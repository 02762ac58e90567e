// The AgentRuntime contract (./contract.ts), run against the bubblewrap driver on this host.
import { describeAgentRuntimeContract } from './contract.js';
import { bubblewrapFixture } from './support/bubblewrap.js';

describeAgentRuntimeContract('bubblewrap', bubblewrapFixture);
