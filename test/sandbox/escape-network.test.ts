/**
 * Escape battery, part 3: the network. The agent's network namespace has only `lo` and no route:
 * TCP to a server the test runs on the host's 127.0.0.1 is refused (the agent's own loopback),
 * any other address fails at once with ENETUNREACH (nothing is sent), and the host's Unix
 * sockets (path and abstract) cannot be reached; the runner socket bound at /run/warren can.
 * Host side: the servers saw no connection, the agent's namespace (read through
 * /proc/<pid>/net on the host) has only `lo` and an empty routing table.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E, namespaceOf, parseProbe, waitFor, Warren } from './support/fixture.js';
import { perl } from './support/probes.js';

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** A listening server counting its connections; closed after the test. */
async function countingServer(listen: (server: Server, ready: () => void) => void): Promise<{ server: Server; count: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    listen(server, resolve);
  });
  return { server, count: () => connections };
}

const close = (server: Server) => new Promise((resolve) => server.close(resolve));

describe('network', () => {
  it('TCP to the host loopback is refused, other addresses are unreachable, host Unix sockets are out of reach', async () => {
    const tcp = await countingServer((s, ready) => s.listen(0, '127.0.0.1', ready));
    const port = (tcp.server.address() as { port: number }).port;
    const tmpSocketDir = mkdtempSync(join(tmpdir(), 'warren-battery-sock-'));
    const tmpSocket = join(tmpSocketDir, 'host.sock');
    const unixTmp = await countingServer((s, ready) => s.listen(tmpSocket, ready));
    const runSocketDir = join('/run', `warren-battery-${process.pid}-${Warren.marker()}`);
    mkdirSync(runSocketDir, { mode: 0o755 });
    const runSocket = join(runSocketDir, 'host.sock');
    const unixRun = await countingServer((s, ready) => s.listen(runSocket, ready));
    const abstractName = `warren-battery-${Warren.marker()}`;
    const abstract = await countingServer((s, ready) => s.listen(`\0${abstractName}`, ready));
    // The host's own non-loopback addresses: the agent must not reach them either (nothing is sent
    // from the host; the sandbox has no route to send anything).
    const hostAddresses = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal && a.family === 'IPv4')
      .map((a) => a!.address);
    try {
      const body = String.raw`
        try_connect_inet('tcp_host_loopback', AF_INET, inet_aton('127.0.0.1'), ${port});
        try_connect_inet('tcp_test_net', AF_INET, inet_aton('192.0.2.1'), 80);
        try_connect_inet('tcp_public', AF_INET, inet_aton('1.1.1.1'), 443);
        ${hostAddresses.map((a, i) => `try_connect_inet('tcp_host_address_${i}', AF_INET, inet_aton('${a}'), 22);`).join('\n')}
        try_connect_inet('tcp6_doc', AF_INET6, Socket::inet_pton(AF_INET6, '2001:db8::1'), 80);
        socket(my $u, AF_INET, SOCK_DGRAM, 0) or die;
        out('udp_send', defined(send($u, 'x', 0, pack_sockaddr_in(53, inet_aton('192.0.2.1')))) ? 'ok' : err());
        try_connect_unix('unix_host_tmp', '${tmpSocket}');
        try_connect_unix('unix_host_run', '${runSocket}');
        try_connect_unix('unix_abstract', "\0${abstractName}");
        # control: the runner socket the supervisor binds at /run/warren
        try_connect_unix('unix_runner', '/run/warren/agent.sock');
        open(my $dev, '<', '/proc/net/dev') or die; my @ifs = map { /^\s*([^:]+):/ ? $1 : () } <$dev>;
        out('interfaces', join(',', @ifs));
        hold();
      `;
      const agent = await warren.spawn('net', perl(body));
      await agent.waitForLog('probes-done');
      const r = parseProbe(agent.log());
      expect(r).toMatchObject({
        tcp_host_loopback: E('ECONNREFUSED'),
        tcp_test_net: E('ENETUNREACH'),
        tcp_public: E('ENETUNREACH'),
        tcp6_doc: E('ENETUNREACH'),
        udp_send: E('ENETUNREACH'),
        unix_host_tmp: E('ENOENT'),
        unix_host_run: E('ENOENT'),
        unix_abstract: E('ECONNREFUSED'),
        unix_runner: 'ok',
        interfaces: 'lo',
      });
      expect(hostAddresses.length).toBeGreaterThan(0);
      hostAddresses.forEach((_, i) => expect(r[`tcp_host_address_${i}`]).toBe(E('ENETUNREACH')));
      // Host side: no server saw a connection except the runner socket; the agent's namespace has
      // only lo and no route.
      expect([tcp.count(), unixTmp.count(), unixRun.count(), abstract.count()]).toEqual([0, 0, 0, 0]);
      await waitFor('the runner socket to see the control connection', () => agent.runnerConnections() === 1, 5000);
      for (const pid of agent.hostPids()) {
        expect(namespaceOf(pid, 'net')).not.toBe(namespaceOf('self', 'net'));
        const ifaces = readFileSync(`/proc/${pid}/net/dev`, 'utf8').split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean);
        expect(ifaces).toEqual(['lo']);
        expect(readFileSync(`/proc/${pid}/net/route`, 'utf8').trim().split('\n')).toHaveLength(1);
        expect(readFileSync(`/proc/${pid}/net/ipv6_route`, 'utf8').split('\n').filter((l) => l.trim() && !/ lo$/.test(l))).toEqual([]);
      }
      await agent.sandbox.stop(2000);
    } finally {
      await Promise.all([tcp, unixTmp, unixRun, abstract].map((s) => close(s.server)));
      rmSync(tmpSocketDir, { recursive: true, force: true });
      rmSync(runSocketDir, { recursive: true, force: true });
    }
  });
});
