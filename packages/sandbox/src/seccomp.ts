/**
 * The seccomp filter every sandbox runs under, emitted as classic BPF (an array of 8-byte
 * `struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }`, little-endian) for `bwrap --seccomp FD`.
 * No native dependency.
 *
 * The rules follow Flatpak's sandbox filter (`setup_seccomp` in flatpak-run.c):
 * - calls that reach kernel attack surface or let a process leave its sandbox (namespaces, mounts,
 *   chroot, bpf, io_uring, ptrace, keyrings, kernel modules, …) fail with EPERM;
 * - `clone3` and the new mount API fail with ENOSYS, so libc falls back to `clone` (whose flags
 *   the filter can inspect) or gives up cleanly;
 * - `clone` with any CLONE_NEW* flag fails with EPERM;
 * - `ioctl` TIOCSTI and TIOCLINUX (typing into the controlling terminal) fail with EPERM; the
 *   request is compared on its low 32 bits, as the kernel reads it (the CVE-2019-10063 lesson);
 * - `socket` accepts only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK; any other family (AF_VSOCK,
 *   AF_PACKET, AF_ALG, …) fails with EAFNOSUPPORT;
 * - `personality` accepts only PER_LINUX, PER_LINUX32 and the 0xffffffff query; others get EINVAL
 *   (no turning ASLR off);
 * - everything else is allowed. Only the x86_64 ABI is accepted: a call made through another
 *   architecture (i386 `int 0x80`) kills the process, and x32 calls fail with ENOSYS.
 *
 * Sources: linux/seccomp.h, linux/filter.h, linux/bpf_common.h, linux/audit.h (AUDIT_ARCH_X86_64),
 * arch/x86/entry/syscalls/syscall_64.tbl, linux/sched.h, asm-generic/ioctls.h, linux/socket.h,
 * linux/personality.h, Flatpak's seccomp rules.
 */

/** errno values the filter returns (asm-generic/errno-base.h, asm-generic/errno.h). */
export const SECCOMP_ERRNO = { EPERM: 1, EINVAL: 22, ENOSYS: 38, EAFNOSUPPORT: 97 } as const;

const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const AUDIT_ARCH_X86_64 = 0xc000003e;
/** x32 ABI system call numbers have this bit set. */
const X32_SYSCALL_BIT = 0x40000000;

// struct seccomp_data: int nr (offset 0), u32 arch (4), u64 instruction_pointer (8), u64 args[6]
// (16 + 8 * i). x86_64 is little-endian: the low 32 bits of args[i] are at 16 + 8 * i.
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const argLow32 = (i: number): number => 16 + 8 * i;

// Classic BPF opcodes (linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, …
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

/** The x86_64 system call numbers the filter names (syscall_64.tbl). */
export const X86_64_SYSCALLS = {
  ioctl: 16,
  socket: 41,
  clone: 56,
  ptrace: 101,
  syslog: 103,
  uselib: 134,
  personality: 135,
  modify_ldt: 154,
  pivot_root: 155,
  chroot: 161,
  acct: 163,
  mount: 165,
  umount2: 166,
  swapon: 167,
  swapoff: 168,
  reboot: 169,
  init_module: 175,
  delete_module: 176,
  quotactl: 179,
  nfsservctl: 180,
  lookup_dcookie: 212,
  mbind: 237,
  set_mempolicy: 238,
  get_mempolicy: 239,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  migrate_pages: 256,
  unshare: 272,
  move_pages: 279,
  perf_event_open: 298,
  name_to_handle_at: 303,
  open_by_handle_at: 304,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  kexec_file_load: 320,
  bpf: 321,
  userfaultfd: 323,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  open_tree: 428,
  move_mount: 429,
  fsopen: 430,
  fsconfig: 431,
  fsmount: 432,
  fspick: 433,
  clone3: 435,
  mount_setattr: 442,
} as const;

/** A system call name the filter knows. */
export type FilteredSyscall = keyof typeof X86_64_SYSCALLS;

/** Calls refused with EPERM whatever their arguments. */
export const DENIED_SYSCALLS: readonly FilteredSyscall[] = [
  'unshare', 'setns', 'mount', 'umount2', 'pivot_root', 'chroot', 'bpf', 'perf_event_open',
  'userfaultfd', 'keyctl', 'add_key', 'request_key', 'kexec_load', 'kexec_file_load', 'init_module',
  'finit_module', 'delete_module', 'open_by_handle_at', 'name_to_handle_at', 'io_uring_setup',
  'io_uring_enter', 'io_uring_register', 'ptrace', 'process_vm_readv', 'process_vm_writev',
  'modify_ldt', 'mbind', 'set_mempolicy', 'get_mempolicy', 'move_pages', 'migrate_pages', 'syslog',
  'uselib', 'acct', 'swapon', 'swapoff', 'reboot', 'quotactl', 'nfsservctl', 'lookup_dcookie',
];

/** Calls answered ENOSYS so that libc falls back to an older call the filter can inspect. */
export const UNAVAILABLE_SYSCALLS: readonly FilteredSyscall[] = [
  'clone3', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr',
];

/**
 * Every CLONE_NEW* flag (linux/sched.h): a `clone` asking for any of them gets EPERM. CLONE_NEWTIME
 * (0x80) shares its bit with the exit-signal byte of `clone`, but no signal number (1..64) has it.
 */
export const CLONE_NEW_FLAGS =
  0x00000080 /* NEWTIME */ | 0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ |
  0x04000000 /* NEWUTS */ | 0x08000000 /* NEWIPC */ | 0x10000000 /* NEWUSER */ |
  0x20000000 /* NEWPID */ | 0x40000000 /* NEWNET */;

/** ioctl requests refused with EPERM: pushing input into a terminal (asm-generic/ioctls.h). */
export const DENIED_IOCTLS = { TIOCSTI: 0x5412, TIOCLINUX: 0x541c } as const;

/** The only socket families `socket()` accepts (linux/socket.h); others get EAFNOSUPPORT. */
export const ALLOWED_SOCKET_FAMILIES = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 } as const;

/** `personality` arguments accepted (linux/personality.h); others get EINVAL. */
export const ALLOWED_PERSONALITIES = { PER_LINUX: 0x0000, PER_LINUX32: 0x0008, QUERY: 0xffffffff } as const;

interface Instruction {
  readonly code: number;
  readonly jt: number;
  readonly jf: number;
  readonly k: number;
}

const stmt = (code: number, k: number): Instruction => ({ code, jt: 0, jf: 0, k });
const jump = (code: number, k: number, jt: number, jf: number): Instruction => ({ code, jt, jf, k });
const retErrno = (e: number): Instruction => stmt(RET_K, SECCOMP_RET_ERRNO | e);
const retAllow = (): Instruction => stmt(RET_K, SECCOMP_RET_ALLOW);

/**
 * A rule on one syscall's 32-bit argument `arg` (register A holds the syscall number on entry):
 * when the number is `nr`, the call is allowed iff the argument equals one of `allowed`, else it
 * returns `errno`; other syscalls fall through to the next rule with A unchanged.
 */
function argAllowList(nr: number, arg: number, allowed: readonly number[], errno: number): Instruction[] {
  const n = allowed.length;
  // Layout: JEQ nr | LD arg | JEQ v0 … JEQ v(n-1) | RET errno | RET allow
  return [
    jump(JEQ_K, nr, 0, n + 3),
    stmt(LD_W_ABS, argLow32(arg)),
    ...allowed.map((value, i) => jump(JEQ_K, value >>> 0, n - i, 0)),
    retErrno(errno),
    retAllow(),
  ];
}

/** Like {@link argAllowList} but refusing the listed values and allowing the rest. */
function argDenyList(nr: number, arg: number, denied: readonly number[], errno: number): Instruction[] {
  const n = denied.length;
  // Layout: JEQ nr | LD arg | JEQ v0 … JEQ v(n-1) | RET allow | RET errno
  return [
    jump(JEQ_K, nr, 0, n + 3),
    stmt(LD_W_ABS, argLow32(arg)),
    ...denied.map((value, i) => jump(JEQ_K, value >>> 0, n - i, 0)),
    retAllow(),
    retErrno(errno),
  ];
}

/** The filter as instructions (see the module comment for the rules). */
function instructions(): Instruction[] {
  const { EPERM, EINVAL, ENOSYS, EAFNOSUPPORT } = SECCOMP_ERRNO;
  const program: Instruction[] = [
    stmt(LD_W_ABS, OFFSET_ARCH),
    jump(JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
    stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
    stmt(LD_W_ABS, OFFSET_NR),
    jump(JGE_K, X32_SYSCALL_BIT, 0, 1),
    retErrno(ENOSYS),
  ];
  // Every rule starts with A = syscall number and leaves it so when it does not return.
  for (const name of DENIED_SYSCALLS) program.push(jump(JEQ_K, X86_64_SYSCALLS[name], 0, 1), retErrno(EPERM));
  for (const name of UNAVAILABLE_SYSCALLS) program.push(jump(JEQ_K, X86_64_SYSCALLS[name], 0, 1), retErrno(ENOSYS));
  // clone(flags, stack, parent_tid, child_tid, tls) on x86_64: flags is args[0].
  program.push(
    jump(JEQ_K, X86_64_SYSCALLS.clone, 0, 4),
    stmt(LD_W_ABS, argLow32(0)),
    jump(JSET_K, CLONE_NEW_FLAGS, 0, 1),
    retErrno(EPERM),
    retAllow(),
  );
  program.push(...argDenyList(X86_64_SYSCALLS.ioctl, 1, Object.values(DENIED_IOCTLS), EPERM));
  program.push(...argAllowList(X86_64_SYSCALLS.socket, 0, Object.values(ALLOWED_SOCKET_FAMILIES), EAFNOSUPPORT));
  program.push(...argAllowList(X86_64_SYSCALLS.personality, 0, Object.values(ALLOWED_PERSONALITIES), EINVAL));
  program.push(retAllow());
  return program;
}

let compiled: Buffer | undefined;

/**
 * The sandbox's seccomp program (x86_64 only), as bytes for `bwrap --seccomp FD`: a whole number of
 * 8-byte `sock_filter` instructions (well under the kernel's 4096-instruction cap). Built once per
 * process; callers get a copy they may hand to a stream.
 */
export function buildSeccompProgram(): Buffer {
  if (!compiled) {
    const program = instructions();
    for (const ins of program) {
      if (ins.jt > 255 || ins.jf > 255) throw new RangeError('seccomp jump offset does not fit in 8 bits');
    }
    const bytes = Buffer.alloc(program.length * 8);
    program.forEach((ins, i) => {
      bytes.writeUInt16LE(ins.code, i * 8);
      bytes.writeUInt8(ins.jt, i * 8 + 2);
      bytes.writeUInt8(ins.jf, i * 8 + 3);
      bytes.writeUInt32LE(ins.k >>> 0, i * 8 + 4);
    });
    compiled = bytes;
  }
  return Buffer.from(compiled);
}

/** Whether the sandbox's seccomp filter can run on this machine (it is written for x86_64 only). */
export function seccompSupported(arch: string = process.arch): boolean {
  return arch === 'x64';
}
