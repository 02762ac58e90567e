export { AgentGateway, type AgentGatewayOptions, type GatewayEvents, type GatewayIdentity } from '@warren/runtime';
