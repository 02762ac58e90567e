import { accessSync, constants, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { spawnImplementation } from '@warren/spawn';

/**
 * Descriptors the sandbox's first process keeps: stdin, stdout, stderr, bwrap's JSON status (3)
 * and the seccomp program (4). Every other descriptor it inherited from the supervisor's own
 * parent (a service manager, a shell, a test runner) is closed before bwrap starts, so none
 * reaches the agent.
 */
export const KEPT_FDS = 5;

/**
 * Closes descriptors >= 5, for when one is above 9 and the shell is not bash (`dash` cannot name
 * them): Perl (perl-base, part of every Debian system) lists /proc/self/fd, closes them and execs
 * the rest of argv.
 */
const PERL_CLOSER = [
  'opendir(my $d, "/proc/self/fd") or die "warren-sandbox: cannot list /proc/self/fd: $!\\n";',
  `my @fds = grep { /^\\d+$/ && $_ >= ${KEPT_FDS} } readdir($d);`,
  'closedir($d);',
  'require POSIX; POSIX::close($_) for @fds;',
  'exec { $ARGV[0] } @ARGV or die "warren-sandbox: cannot exec $ARGV[0]: $!\\n";',
].join(' ');

/**
 * The prologue, run as `SHELL -c PROLOGUE warren-sandbox N procs1..procsN MODE NOFILE FSIZE NPROC
 * PERL CLOSER cmd…`: it writes its pid to each cgroup's `cgroup.procs` (so everything it execs
 * starts inside them, without a race); with MODE `bash` or `dash` it sets RLIMIT_NOFILE,
 * RLIMIT_FSIZE (FSIZE in the shell's `ulimit -f` blocks) and RLIMIT_NPROC, soft and hard, with the
 * shell's own `ulimit` (MODE `none`: `cmd…` starts with prlimit, which sets them); it closes
 * inherited descriptors 5..9 itself, and those above 9 too when it runs under bash (the spawn's
 * environment is empty, so `BASH_VERSION` is bash's own), else execs Perl to close them when
 * there are any; then it execs `cmd…`. Paths arrive as positional arguments, never as
 * shell text. Exit status 125 and a `warren-sandbox:` line on stderr mean it failed.
 */
export const PROLOGUE = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  '  echo $$ > "$1" || { echo "warren-sandbox: cannot join cgroup $1" >&2; exit 125; }',
  '  shift; n=$((n - 1))',
  'done',
  'mode=$1; nofile=$2; fsize=$3; nproc=$4; perl=$5; closer=$6; shift 6',
  'case $mode in',
  '  bash) { ulimit -n "$nofile" && ulimit -f "$fsize" && ulimit -u "$nproc"; } 2>/dev/null ;;',
  '  dash) { ulimit -n "$nofile" && ulimit -f "$fsize" && ulimit -p "$nproc"; } 2>/dev/null ;;',
  'esac || { echo "warren-sandbox: cannot set the resource limits (nofile $nofile, fsize $fsize blocks, nproc $nproc)" >&2; exit 125; }',
  'high=',
  'for f in /proc/self/fd/*; do',
  '  fd=${f##*/}',
  '  case $fd in',
  `    [0-${KEPT_FDS - 1}]) ;;`,
  '    [0-9]) eval "exec $fd>&-" ;;',
  '    *) if [ -n "${BASH_VERSION-}" ]; then eval "exec $fd>&-"; else [ -e "$f" ] && high=1; fi ;;',
  '  esac',
  'done',
  'if [ -n "$high" ]; then',
  '  [ -x "$perl" ] || { echo "warren-sandbox: inherited descriptors above 9 need perl to be closed (apt-get install -y perl-base)" >&2; exit 125; }',
  '  exec "$perl" -e "$closer" -- "$@"',
  'fi',
  'exec "$@"',
].join('\n');

/**
 * The shell that runs the prologue: `bash` (its `ulimit -u` sets RLIMIT_NPROC, `-f` counts
 * 1024-byte blocks, it can close any descriptor), `dash` (`ulimit -p`, 512-byte blocks, closes
 * 0..9 only) or `sh` (anything else: the limits are set by prlimit, which is then one exec more).
 */
export interface PrologueShell {
  readonly path: string;
  readonly kind: 'bash' | 'dash' | 'sh';
}

/** Resource limits the prologue sets (see `SandboxLimits`): counts, and bytes for `fsizeBytes`. */
export interface PrologueLimits {
  readonly nofile: number;
  readonly fsizeBytes: number;
  readonly nproc: number;
}

/** `close-on-exec` in the `flags:` line of /proc/self/fdinfo/N (octal there). */
const O_CLOEXEC = 0o2000000;

/** The first of `paths` that is executable, or ''. */
function firstExecutable(paths: readonly string[]): string {
  for (const candidate of paths) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return '';
}

let perlPath: string | undefined;

/** /usr/bin/perl (or /bin/perl) if executable, else '' (the prologue then fails only if it needs it). */
function findPerl(): string {
  perlPath ??= firstExecutable(['/usr/bin/perl', '/bin/perl']);
  return perlPath;
}

/**
 * Whether this process holds a descriptor above 9 that a child would inherit (no close-on-exec
 * flag in /proc/self/fdinfo): one its own parent passed on (a process manager's pipe), since Node
 * opens everything close-on-exec. False when /proc cannot be read.
 */
export function inheritsHighDescriptors(): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return false;
  }
  for (const entry of entries) {
    const fd = Number(entry);
    if (!Number.isInteger(fd) || fd <= 9) continue;
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (flags && (parseInt(flags[1]!, 8) & O_CLOEXEC) === 0) return true;
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return false;
}

let shIsDash: boolean | undefined;

/**
 * Whether the host's `/bin/sh` is dash (its real path's name), which sandboxes see through their
 * read-only `/bin` and `/usr`. Checked once per process; false when `/bin/sh` cannot be resolved.
 */
export function binShIsDash(): boolean {
  if (shIsDash === undefined) {
    try {
      shIsDash = basename(realpathSync('/bin/sh')) === 'dash';
    } catch {
      shIsDash = false;
    }
  }
  return shIsDash;
}

let chosenShell: PrologueShell | undefined;

/**
 * The shell for the prologue, chosen once per process: bash when children of this process would
 * inherit descriptors above 9 (bash closes them, where dash would need a Perl exec): only with
 * `child_process`'s fork and when this process holds such descriptors
 * ({@link inheritsHighDescriptors}), since `@warren/spawn`'s `posix_spawn` closes every descriptor
 * past the child's list. Else `/bin/sh` when it is dash (the lightest), else bash, else `/bin/sh`
 * as `sh`. Only a matter of cost: under each, the prologue closes every inherited descriptor and
 * sets the same limits.
 */
export function prologueShell(): PrologueShell {
  if (chosenShell) return chosenShell;
  const bash = firstExecutable(['/bin/bash', '/usr/bin/bash']);
  const dash = binShIsDash();
  const highInherited = spawnImplementation() === 'child_process' && inheritsHighDescriptors();
  if (bash !== '' && (!dash || highInherited)) chosenShell = { path: bash, kind: 'bash' };
  else chosenShell = dash ? { path: '/bin/sh', kind: 'dash' } : { path: '/bin/sh', kind: 'sh' };
  return chosenShell;
}

/** Bytes in one `ulimit -f` block of each shell that sets the limits itself. */
const FSIZE_BLOCK = { bash: 1024, dash: 512 } as const;

/**
 * The argv for `shell.path` (bash gets `--norc --noprofile` first: no startup file runs) that
 * joins `procsFiles` (cgroup.procs paths), sets `limits` (soft and hard), closes inherited
 * descriptors >= {@link KEPT_FDS} and execs `command`. The limits are set by the shell's `ulimit`
 * (no exec) when the shell is bash or dash and `fsizeBytes` is a whole number of its blocks, else
 * by `prlimitPath` put before `command`. `options.perlPath`: the Perl
 * that closes descriptors above 9 under a shell other than bash ('' for none); default the host's.
 * @throws {Error} when prlimit is needed and `prlimitPath` is null.
 */
export function prologueArgv(
  shell: PrologueShell,
  procsFiles: readonly string[],
  limits: PrologueLimits,
  prlimitPath: string | null,
  command: readonly string[],
  options?: { readonly perlPath?: string },
): string[] {
  // --norc: a non-interactive bash whose stdin is a socket (a `stdin: 'pipe'` spawn) would
  // otherwise take itself for an rshd/sshd command and source /etc/bash.bashrc and ~/.bashrc.
  const head = [...(shell.kind === 'bash' ? ['--norc', '--noprofile'] : []), '-c', PROLOGUE, 'warren-sandbox', String(procsFiles.length), ...procsFiles];
  const tail = [options?.perlPath ?? findPerl(), PERL_CLOSER];
  if (shell.kind !== 'sh' && limits.fsizeBytes % FSIZE_BLOCK[shell.kind] === 0) {
    const fsize = String(limits.fsizeBytes / FSIZE_BLOCK[shell.kind]);
    return [...head, shell.kind, String(limits.nofile), fsize, String(limits.nproc), ...tail, ...command];
  }
  if (prlimitPath === null) throw new Error('prlimit is needed to set the resource limits (apt-get install -y util-linux)');
  const prlimit = [
    prlimitPath,
    `--nofile=${limits.nofile}:${limits.nofile}`,
    `--fsize=${limits.fsizeBytes}:${limits.fsizeBytes}`,
    `--nproc=${limits.nproc}:${limits.nproc}`,
    '--',
  ];
  return [...head, 'none', '', '', '', ...tail, ...prlimit, ...command];
}
