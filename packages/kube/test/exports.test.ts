import { expect, test } from 'vitest';
import * as kube from '@warren/kube';

test('the public surface is the names index.ts lists', () => {
  expect(Object.keys(kube).sort()).toEqual([
    'AGENT_APP_NAME',
    'AGENT_CONTAINER_NAME',
    'AGENT_LABELS',
    'AGENT_POD_DEFAULTS',
    'AgentPodSpecError',
    'ManifestError',
    'ManifestRule',
    'NATS_CREDENTIALS_KEY',
    'NATS_CREDENTIALS_MODE',
    'PIDS_MAX_ANNOTATION',
    'PodSecurityRule',
    'VALIDATED_KINDS',
    'agentManifests',
    'agentResourceNames',
    'assertValidManifest',
    'bytesQuantity',
    'checkRestricted',
    'cpuQuantity',
    'dns1123Label',
    'formatFieldPath',
    'isDns1123Label',
    'isDns1123Subdomain',
    'isLabelKey',
    'isLabelValue',
    'natsCredentialsJson',
    'networkPolicyManifest',
    'podManifest',
    'pvcManifest',
    'resolveAgentPodSpec',
    'secretManifest',
    'serviceAccountManifest',
    'validateManifest',
  ]);
});
