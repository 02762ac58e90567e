/**
 * Escape battery, part 2: the kernel surface. Namespaces, mounts, chroot, bpf, io_uring, TIOCSTI,
 * socket families, cgroup files and setuid programs, from inside a sandbox run as the supervisor
 * runs agents. Flatpak-style proof: a call the seccomp filter blocks gives EPERM (ENOSYS for
 * clone3 and the new mount API, EAFNOSUPPORT for refused socket families) even with arguments
 * that would otherwise fail with EFAULT/EBADF/ENOTTY, while an allowed call with the same bad
 * arguments gives EFAULT/EBADF. Host side: the agent's processes stay in the host's user
 * namespace, carry the filter (`Seccomp: 2`), no_new_privs and no capabilities, and stay in their
 * cgroups with their limits unchanged.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupsOf, E, namespaceOf, parseProbe, statusField, succeeded, Warren, type Agent } from './support/fixture.js';
import { perl } from './support/probes.js';

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** Checks, from the host, that every process of `agent` is filtered, unprivileged and in the host user namespace. */
function expectConfinedOnHost(agent: Agent): void {
  const pids = agent.hostPids();
  expect(pids.length).toBeGreaterThan(0);
  for (const pid of pids) {
    expect(namespaceOf(pid, 'user'), `user namespace of ${pid}`).toBe(namespaceOf('self', 'user'));
    expect(namespaceOf(pid, 'net'), `net namespace of ${pid}`).not.toBe(namespaceOf('self', 'net'));
    expect(namespaceOf(pid, 'mnt'), `mount namespace of ${pid}`).not.toBe(namespaceOf('self', 'mnt'));
    expect(statusField(pid, 'Seccomp'), `Seccomp of ${pid}`).toBe('2');
    expect(statusField(pid, 'NoNewPrivs'), `NoNewPrivs of ${pid}`).toBe('1');
    expect(statusField(pid, 'CapEff'), `CapEff of ${pid}`).toBe('0000000000000000');
    expect(statusField(pid, 'CapBnd'), `CapBnd of ${pid}`).toBe('0000000000000000');
    const uid = String(agent.account.uid);
    expect(statusField(pid, 'Uid')?.split(/\s+/), `Uid of ${pid}`).toEqual([uid, uid, uid, uid]);
  }
}

describe('namespaces, mounts and other blocked calls', () => {
  it('refuses user namespaces, mount, setns, chroot, bpf, io_uring, TIOCSTI with the filter errno', async () => {
    const body = String.raw`
      my $r;
      # user, mount and network namespaces: unshare and clone with CLONE_NEW* flags
      sc('unshare_user', 272, 0x10000000);
      sc('unshare_mount', 272, 0x00020000);
      sc('unshare_net', 272, 0x40000000);
      $r = syscall(56, 0x10000000 | 17, 0, 0, 0, 0);
      POSIX::_exit(0) if $r == 0;
      out('clone_newuser', $r == -1 ? err() : 'ok');
      waitpid($r, 0) if $r > 0;
      sc('clone3', 435, 1, 88);
      my $nested = qx{/usr/bin/unshare --user --map-root-user /usr/bin/id -u 2>/dev/null};
      chomp $nested;
      out('unshare_tool', "status:" . ($? >> 8) . ",uid:" . ($nested eq '' ? 'none' : $nested));
      # mounts: old and new API, with bad pointers (EFAULT if the call were allowed)
      sc('mount_badptr', 165, 1, 1, 1, 0, 0);
      sc('mount_tmpfs', 165, 'none', '/tmp', 'tmpfs', 0, 0);
      sc('umount2_badptr', 166, 1, 0);
      sc('pivot_root', 155, '/tmp', '/tmp');
      sc('fsopen', 430, 'tmpfs', 0);
      sc('open_tree', 428, -100, '/tmp', 0);
      # setns and chroot with bad arguments (EBADF / EFAULT if allowed)
      sc('setns_badfd', 308, -1, 0);
      sc('chroot_badptr', 161, 1);
      sc('chroot_tmp', 161, '/tmp');
      # bpf, io_uring, perf, keys, userfaultfd with bad pointers
      sc('bpf_badptr', 321, 5, 1, 8);
      sc('io_uring_setup_badptr', 425, 1, 1);
      sc('perf_event_open_badptr', 298, 1, 0, -1, -1, 0);
      sc('keyctl', 250, 0, 0, 0, 0, 0);
      sc('userfaultfd', 323, 0);
      # TIOCSTI / TIOCLINUX on stdout (a pipe: ENOTTY if allowed); no controlling terminal at all
      sc('tiocsti', 16, 1, 0x5412, 'x');
      sc('tioclinux', 16, 1, 0x541c, 'x');
      out('dev_tty', open(my $tty, '<', '/dev/tty') ? 'ok' : err());
      # controls: allowed calls with bad arguments
      sc('ioctl_tcgets_badfd', 16, -1, 0x5401, 0);
      sc('dup_badfd', 32, -1);
      sc('uname_badptr', 63, 1);
      hold();
    `;
    const agent = await warren.spawn('kernel', perl(body));
    await agent.waitForLog('probes-done');
    const r = parseProbe(agent.log());
    expect(r).toMatchObject({
      unshare_user: E('EPERM'),
      unshare_mount: E('EPERM'),
      unshare_net: E('EPERM'),
      clone_newuser: E('EPERM'),
      clone3: E('ENOSYS'),
      unshare_tool: 'status:1,uid:none',
      mount_badptr: E('EPERM'),
      mount_tmpfs: E('EPERM'),
      umount2_badptr: E('EPERM'),
      pivot_root: E('EPERM'),
      fsopen: E('ENOSYS'),
      open_tree: E('ENOSYS'),
      setns_badfd: E('EPERM'),
      chroot_badptr: E('EPERM'),
      chroot_tmp: E('EPERM'),
      bpf_badptr: E('EPERM'),
      io_uring_setup_badptr: E('EPERM'),
      perf_event_open_badptr: E('EPERM'),
      keyctl: E('EPERM'),
      userfaultfd: E('EPERM'),
      tiocsti: E('EPERM'),
      tioclinux: E('EPERM'),
      dev_tty: E('ENXIO'),
      ioctl_tcgets_badfd: E('EBADF'),
      dup_badfd: E('EBADF'),
      uname_badptr: E('EFAULT'),
    });
    expectConfinedOnHost(agent);
    // No controlling terminal: field 7 (tty_nr) of /proc/<pid>/stat is 0.
    for (const pid of agent.hostPids()) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      expect(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[4], `tty_nr of ${pid}`).toBe('0');
    }
    await agent.sandbox.stop(2000);
  });

  it('refuses AF_VSOCK and AF_PACKET sockets but allows Unix sockets', async () => {
    // Only socket() is called: nothing is ever connected or sent.
    const body = String.raw`
      for my $case (['vsock', 40, 1], ['packet', 17, 3], ['packet_dgram', 17, 2], ['unix', 1, 1], ['inet', 2, 1]) {
        my $r = sc("socket_$case->[0]", 41, $case->[1], $case->[2], 0);
        POSIX::close($r) if $r >= 0;
      }
      hold();
    `;
    const agent = await warren.spawn('sockets', perl(body));
    await agent.waitForLog('probes-done');
    const r = parseProbe(agent.log());
    expect(r).toMatchObject({
      socket_vsock: E('EAFNOSUPPORT'),
      socket_packet: E('EAFNOSUPPORT'),
      socket_packet_dgram: E('EAFNOSUPPORT'),
    });
    expect(r.socket_unix).toMatch(/^ok:\d+$/);
    expect(r.socket_inet).toMatch(/^ok:\d+$/);
    expectConfinedOnHost(agent);
    // Host side: the agent holds no vsock or packet socket (the only sockets it ever had are closed).
    for (const pid of agent.hostPids()) {
      const net = readFileSync(`/proc/${pid}/net/packet`, 'utf8').trim().split('\n');
      expect(net.length, `packet sockets in ${pid}'s namespace`).toBe(1);
    }
    await agent.sandbox.stop(2000);
  });
});

describe('cgroups', () => {
  it('cannot see or write its cgroup files, and stays in its cgroups with its limits', async () => {
    const body = String.raw`
      my $name = $ENV{WARREN_AGENT};
      out('sys', -e '/sys' ? 'present' : 'absent');
      try_open('memory_limit', '>', "/sys/fs/cgroup/memory/warren/$name/memory.limit_in_bytes");
      try_open('pids_max', '>', "/sys/fs/cgroup/pids/warren/$name/pids.max");
      try_open('root_procs', '>', '/sys/fs/cgroup/pids/cgroup.procs');
      try_open('unified_kill', '>', "/sys/fs/cgroup/unified/warren/$name/cgroup.kill");
      sc('mount_cgroupfs', 165, 'cgroup', '/tmp', 'cgroup', 0, 'pids');
      sc('mount_cgroup2', 165, 'cgroup2', '/tmp', 'cgroup2', 0, 0);
      open(my $cg, '<', '/proc/self/cgroup') or die;
      my @lines = map { chomp; $_ } <$cg>;
      out('own_cgroup_paths', join(',', sort { $a cmp $b } keys %{{ map { (split(/:/, $_, 3))[2] => 1 } @lines }}));
      hold();
    `;
    const agent = await warren.spawn('cgroups', perl(body), { limits: { memoryMaxBytes: 200 * 1024 * 1024, pidsMax: 40 } });
    await agent.waitForLog('probes-done');
    const r = parseProbe(agent.log());
    expect(r).toMatchObject({
      sys: 'absent',
      memory_limit: E('ENOENT'),
      pids_max: E('ENOENT'),
      root_procs: E('ENOENT'),
      unified_kill: E('ENOENT'),
      mount_cgroupfs: E('EPERM'),
      mount_cgroup2: E('EPERM'),
      // a cgroup namespace: the agent sees its own cgroups as the root
      own_cgroup_paths: '/',
    });
    // Host side: limits unchanged, and every agent process is in warren/<name> in each hierarchy.
    expect(warren.readCgroup(agent.name, 'pids', 'pids.max')).toBe('40');
    const memoryLimit = warren.host.cgroup.version === 'v2' ? 'memory.max' : 'memory.limit_in_bytes';
    expect(warren.readCgroup(agent.name, 'memory', memoryLimit)).toBe(String(200 * 1024 * 1024));
    const dirs = warren.liveCgroupDirs(agent.name);
    const pids = agent.hostPids();
    expect(pids.length).toBeGreaterThan(0);
    for (const dir of dirs) {
      const members = readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
      for (const pid of pids) expect(members, `pid ${pid} in ${dir}`).toContain(pid);
    }
    for (const pid of pids) {
      const paths = cgroupsOf(pid)!;
      for (const path of paths) expect(path, `cgroup of ${pid}`).toMatch(new RegExp(`^/warren/${agent.name}$|^/$`));
      expect(paths).toContain(`/warren/${agent.name}`);
    }
    await agent.sandbox.stop(2000);
  });
});

describe('setuid programs', () => {
  it('a setuid copy of a shell, the agent own or a root one, and the setuid programs in /usr give no privilege', async () => {
    const shell = realpathSync('/bin/sh');
    const script = [
      `cp ${shell} "$HOME/sh" && chmod 4755 "$HOME/sh" && echo own_mode=$(stat -c %a:%u "$HOME/sh")`,
      `echo own_copy=$("$HOME/sh" -p -c 'grep ^Uid: /proc/self/status' | tr -s '\\t ' ' ')`,
      `echo root_mode=$(stat -c %a:%u "$HOME/rootsh")`,
      `echo root_copy=$("$HOME/rootsh" -p -c 'grep ^Uid: /proc/self/status' | tr -s '\\t ' ' ')`,
      '/usr/bin/mount -t tmpfs none /tmp 2>&1 | head -1 | sed "s/^/usr_mount_says=/"; /usr/bin/mount -t tmpfs none /tmp >/dev/null 2>&1; echo usr_mount_status=$?',
      `echo usr_mount_tmp=$(awk '$5 == "/tmp"' /proc/self/mountinfo | wc -l)`,
      `echo home_options=$(awk -v h="$HOME" '$5 == h { print $6 }' /proc/self/mountinfo)`,
      'echo probes-done',
    ].join('\n');
    // The home must exist first: make the account, plant the root-owned setuid copy, then start.
    const account = await warren.account('setuid');
    const rootShell = join(account.home, 'rootsh');
    copyFileSync(shell, rootShell);
    chownSync(rootShell, 0, 0);
    chmodSync(rootShell, 0o4755);
    // Control: outside the sandbox, that copy really does give root to the agent uid.
    const control = spawnSync(
      '/usr/bin/setpriv',
      [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--clear-groups', rootShell, '-p', '-c', 'grep ^Uid: /proc/self/status'],
      { encoding: 'utf8' },
    );
    expect(control.stdout.trim().split(/\s+/)).toEqual(['Uid:', String(account.uid), '0', '0', '0']);

    const runAs = await warren.spawnAs(account, ['/bin/sh', '-c', script]);
    expect(succeeded(await runAs.sandbox.exited), runAs.log()).toBe(true);
    const r = parseProbe(runAs.log());
    const uid = String(account.uid);
    expect(r).toMatchObject({
      own_mode: `4755:${uid}`,
      own_copy: `Uid: ${uid} ${uid} ${uid} ${uid}`,
      root_mode: '4755:0',
      root_copy: `Uid: ${uid} ${uid} ${uid} ${uid}`,
      // mount(8) is setuid root in /usr; with no_new_privs it runs as the agent and refuses
      usr_mount_status: '32',
      usr_mount_tmp: '1',
    });
    expect(r.usr_mount_says).toMatch(/must be superuser/);
    expect(r.home_options?.split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
    // Host side: nothing the agent ran stays, and no file it made is owned by root.
    expect(runAs.hostPids()).toEqual([]);
    const own = statSync(join(account.home, 'sh'));
    expect([own.uid, own.mode & 0o7777]).toEqual([account.uid, 0o4755]);
  });
});
