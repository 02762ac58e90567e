import { execFileSync } from 'node:child_process';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ALLOWED_SOCKET_FAMILIES,
  buildSeccompProgram,
  CLONE_NEW_FLAGS,
  DENIED_SYSCALLS,
  SECCOMP_ERRNO,
  spawnSandbox,
  UNAVAILABLE_SYSCALLS,
  X86_64_SYSCALLS,
} from '@warren/sandbox';
import { cleanup, freshUid, makeSpec, perlArgv, readLog, requireSandboxHost, track } from './helpers.js';

beforeAll(requireSandboxHost);
afterEach(cleanup);

const RET_ALLOW = 0x7fff0000;
const RET_ERRNO = 0x00050000;
const RET_KILL_PROCESS = 0x80000000;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;

/**
 * A classic-BPF interpreter for the instructions the filter uses (linux/filter.h semantics): runs
 * `program` over a `struct seccomp_data` and returns the 32-bit action.
 */
function runFilter(program: Buffer, data: { nr: number; arch?: number; args?: bigint[] }): number {
  const seccompData = Buffer.alloc(64);
  seccompData.writeInt32LE(data.nr, 0);
  seccompData.writeUInt32LE(data.arch ?? AUDIT_ARCH_X86_64, 4);
  (data.args ?? []).forEach((arg, i) => seccompData.writeBigUInt64LE(BigInt.asUintN(64, arg), 16 + 8 * i));
  let a = 0;
  for (let pc = 0, steps = 0; steps < 10_000; steps++) {
    expect(pc * 8, 'program counter inside the program').toBeLessThan(program.length);
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x20: // LD W ABS
        a = seccompData.readUInt32LE(k);
        pc += 1;
        break;
      case 0x15: // JEQ K
        pc += 1 + (a === k ? jt : jf);
        break;
      case 0x35: // JGE K
        pc += 1 + (a >>> 0 >= k ? jt : jf);
        break;
      case 0x45: // JSET K
        pc += 1 + ((a & k) !== 0 ? jt : jf);
        break;
      case 0x06: // RET K
        return k >>> 0;
      default:
        throw new Error(`unexpected BPF opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('filter did not return');
}

describe('the seccomp program', () => {
  const program = buildSeccompProgram();
  const nr = X86_64_SYSCALLS;

  it('is a whole number of sock_filter instructions within the kernel cap', () => {
    expect(program.length % 8).toBe(0);
    expect(program.length / 8).toBeLessThan(4096);
    expect(buildSeccompProgram()).toEqual(program);
  });

  it('kills other architectures and refuses x32 calls', () => {
    expect(runFilter(program, { nr: 0, arch: AUDIT_ARCH_I386 })).toBe(RET_KILL_PROCESS);
    expect(runFilter(program, { nr: 0x40000000 + 1 })).toBe(RET_ERRNO | SECCOMP_ERRNO.ENOSYS);
  });

  it('returns EPERM for every denied call and ENOSYS for clone3 and the new mount API', () => {
    for (const name of DENIED_SYSCALLS) expect(runFilter(program, { nr: nr[name] }), name).toBe(RET_ERRNO | SECCOMP_ERRNO.EPERM);
    for (const name of UNAVAILABLE_SYSCALLS) expect(runFilter(program, { nr: nr[name] }), name).toBe(RET_ERRNO | SECCOMP_ERRNO.ENOSYS);
  });

  it('inspects clone flags, ioctl requests (low 32 bits), socket families and personality', () => {
    const SIGCHLD = 17n;
    expect(runFilter(program, { nr: nr.clone, args: [SIGCHLD] })).toBe(RET_ALLOW);
    expect(runFilter(program, { nr: nr.clone, args: [0x3d0f00n] })).toBe(RET_ALLOW); // pthread_create's flags
    for (let bit = 0; bit < 32; bit++) {
      const flag = 1 << bit;
      if ((CLONE_NEW_FLAGS & flag) === 0) continue;
      expect(runFilter(program, { nr: nr.clone, args: [BigInt(flag >>> 0) | SIGCHLD] }), `flag 0x${flag.toString(16)}`).toBe(
        RET_ERRNO | SECCOMP_ERRNO.EPERM,
      );
    }
    expect(runFilter(program, { nr: nr.ioctl, args: [0n, 0x5412n] })).toBe(RET_ERRNO | SECCOMP_ERRNO.EPERM);
    expect(runFilter(program, { nr: nr.ioctl, args: [0n, (1n << 32n) | 0x5412n] })).toBe(RET_ERRNO | SECCOMP_ERRNO.EPERM);
    expect(runFilter(program, { nr: nr.ioctl, args: [0n, 0x541cn] })).toBe(RET_ERRNO | SECCOMP_ERRNO.EPERM);
    expect(runFilter(program, { nr: nr.ioctl, args: [0n, 0x5401n] })).toBe(RET_ALLOW); // TCGETS
    for (const family of Object.values(ALLOWED_SOCKET_FAMILIES)) expect(runFilter(program, { nr: nr.socket, args: [BigInt(family)] })).toBe(RET_ALLOW);
    for (const family of [17n, 40n, 38n, 3n]) {
      expect(runFilter(program, { nr: nr.socket, args: [family] }), `family ${family}`).toBe(RET_ERRNO | SECCOMP_ERRNO.EAFNOSUPPORT);
    }
    expect(runFilter(program, { nr: nr.personality, args: [0xffffffffn] })).toBe(RET_ALLOW);
    expect(runFilter(program, { nr: nr.personality, args: [0x0040000n] })).toBe(RET_ERRNO | SECCOMP_ERRNO.EINVAL);
    expect(runFilter(program, { nr: 0 })).toBe(RET_ALLOW); // read
    expect(runFilter(program, { nr: 57 })).toBe(RET_ALLOW); // fork
  });
});

/**
 * Raw system calls from Perl, each printed as `name=ok:<ret>` or `name=errno:<n>`. Bad pointer or
 * descriptor arguments are used where possible, so that an ALLOWED call fails with EFAULT/EBADF
 * and only the filter answers EPERM (the Flatpak way of telling blocked from merely failed).
 */
const PROBE = `
  sub t { my ($n, $r) = @_; print "$n=", ($r == -1 ? "errno:" . ($! + 0) : "ok:$r"), "\\n"; }
  t("unshare_newuser", syscall(272, 0x10000000));
  t("unshare_none", syscall(272, 0));
  t("mount_null", syscall(165, 0, 0, 0, 0, 0));
  t("umount2_null", syscall(166, 0, 0));
  t("setns_badfd", syscall(308, -1, 0));
  t("chroot_null", syscall(161, 0));
  t("pivot_root_null", syscall(155, 0, 0));
  t("bpf_null", syscall(321, 0, 0, 0));
  t("io_uring_setup_null", syscall(425, 1, 0));
  t("ptrace_traceme", syscall(101, 0, 0, 0, 0));
  t("process_vm_readv_self", syscall(310, $$, 0, 0, 0, 0, 0));
  t("keyctl_bad", syscall(250, -1, 0, 0, 0, 0));
  t("tiocsti", syscall(16, 0, 0x5412, 0));
  t("tiocsti_high", syscall(16, 0, (1 << 32) | 0x5412, 0));
  t("tcgets_devnull", syscall(16, 0, 0x5401, 0));
  t("clone_newuser", syscall(56, 0x10000000 | 17, 0, 0, 0, 0));
  t("clone3_null", syscall(435, 0, 0));
  t("fsopen_null", syscall(430, 0, 0));
  t("socket_vsock", syscall(41, 40, 1, 0));
  t("socket_packet", syscall(41, 17, 3, 0));
  t("socket_unix", syscall(41, 1, 1, 0));
  t("read_badfd", syscall(0, -1, 0, 0));
  t("write_badptr", syscall(1, 1, 0, 1));
  t("personality_norandom", syscall(135, 0x0040000));
`;

function parseProbe(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

describe('the filter inside a real sandbox', () => {
  it('is on by default and gives the documented errno for each blocked call', async () => {
    const spec = makeSpec(perlArgv(`open(my $s, '<', '/proc/self/status'); print grep { /^Seccomp:/ } <$s>; ${PROBE}`));
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    const log = readLog(spec);
    expect(log).toContain('Seccomp:\t2\n');
    const { EPERM, ENOSYS, EAFNOSUPPORT, EINVAL } = SECCOMP_ERRNO;
    const EBADF = 9;
    const EFAULT = 14;
    const ENOTTY = 25;
    expect(parseProbe(log)).toEqual({
      unshare_newuser: `errno:${EPERM}`,
      unshare_none: `errno:${EPERM}`,
      mount_null: `errno:${EPERM}`,
      umount2_null: `errno:${EPERM}`,
      setns_badfd: `errno:${EPERM}`,
      chroot_null: `errno:${EPERM}`,
      pivot_root_null: `errno:${EPERM}`,
      bpf_null: `errno:${EPERM}`,
      io_uring_setup_null: `errno:${EPERM}`,
      ptrace_traceme: `errno:${EPERM}`,
      process_vm_readv_self: `errno:${EPERM}`,
      keyctl_bad: `errno:${EPERM}`,
      tiocsti: `errno:${EPERM}`,
      tiocsti_high: `errno:${EPERM}`,
      // allowed calls with bad arguments fail the ordinary way
      tcgets_devnull: `errno:${ENOTTY}`,
      read_badfd: `errno:${EBADF}`,
      write_badptr: `errno:${EFAULT}`,
      clone_newuser: `errno:${EPERM}`,
      clone3_null: `errno:${ENOSYS}`,
      fsopen_null: `errno:${ENOSYS}`,
      socket_vsock: `errno:${EAFNOSUPPORT}`,
      socket_packet: `errno:${EAFNOSUPPORT}`,
      socket_unix: expect.stringMatching(/^ok:\d+$/),
      personality_norandom: `errno:${EINVAL}`,
    });
  });

  it('answers differently without the filter: the same calls on the host fail with EBADF/EFAULT or succeed', () => {
    // Same uid drop as the sandbox (setpriv, no caps, no_new_privs), but no bwrap and no filter.
    // unshare(CLONE_NEWUSER) and clone are left out: they would really create namespaces here.
    const uid = freshUid();
    const probe = PROBE.split('\n')
      .filter((line) => !/unshare_newuser|clone_newuser/.test(line))
      .join('\n');
    const out = execFileSync(
      '/usr/bin/setpriv',
      [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--no-new-privs', '/usr/bin/perl', '-e', probe],
      { encoding: 'utf8', env: {}, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const host = parseProbe(out);
    // Each of these is EPERM inside only because of the filter:
    expect(host.unshare_none).toBe('ok:0');
    expect(host.setns_badfd).toBe('errno:9');
    expect(host.chroot_null).toBe('errno:14');
    expect(host.mount_null).toBe('errno:14');
    expect(host.io_uring_setup_null).toBe('errno:14');
    expect(host.ptrace_traceme).toBe('ok:0');
    expect(host.tiocsti).toBe('errno:25');
    expect(host.socket_packet).toBe('errno:1');
    expect(host.clone3_null).not.toBe(`errno:${SECCOMP_ERRNO.ENOSYS}`);
  });

  it('stops util-linux unshare from making a user namespace, and node still runs', async () => {
    const script = [
      '/usr/bin/unshare -U -r /usr/bin/id -u; echo unshare=$?',
      '/usr/bin/unshare -m /bin/true; echo unshare_mount=$?',
      '/usr/bin/node -e "console.log(\'node=\' + (1 + 1))"',
    ].join('; ');
    const spec = makeSpec(['/bin/sh', '-c', `exec 2>&1; ${script}`]);
    const sandbox = track(await spawnSandbox(spec));
    expect(await sandbox.exited).toEqual({ kind: 'succeeded', exitCode: 0 });
    const log = readLog(spec);
    expect(log).toMatch(/unshare failed: Operation not permitted\nunshare=1\n/);
    expect(log).not.toMatch(/^0$/m);
    expect(log).toContain('unshare_mount=1\n');
    expect(log).toContain('node=2\n');
  });
});
