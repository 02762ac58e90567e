import { accessSync, constants } from 'node:fs';

/**
 * Descriptors the sandbox's first process keeps: stdin, stdout, stderr, bwrap's JSON status (3)
 * and the seccomp program (4). Every other descriptor it inherited from the supervisor's own
 * parent (a service manager, a shell, a test runner) is closed before bwrap starts, so none
 * reaches the agent.
 */
export const KEPT_FDS = 5;

/**
 * Closes descriptors >= 5, for when one is above 9 (which `dash` cannot name): Perl (perl-base,
 * part of every Debian system) lists /proc/self/fd, closes them and execs the rest of argv.
 */
const PERL_CLOSER = [
  'opendir(my $d, "/proc/self/fd") or die "warren-sandbox: cannot list /proc/self/fd: $!\\n";',
  `my @fds = grep { /^\\d+$/ && $_ >= ${KEPT_FDS} } readdir($d);`,
  'closedir($d);',
  'require POSIX; POSIX::close($_) for @fds;',
  'exec { $ARGV[0] } @ARGV or die "warren-sandbox: cannot exec $ARGV[0]: $!\\n";',
].join(' ');

/**
 * The prologue, run as `/bin/sh -c PROLOGUE warren-sandbox N procs1..procsN PERL CLOSER cmd…`:
 * it writes its pid to each cgroup's `cgroup.procs` (so everything it execs starts inside them,
 * without a race), closes inherited descriptors 5..9 itself and, if any descriptor above 9 is open,
 * execs Perl to close those; then it execs `cmd…`. Paths arrive as positional arguments, never as
 * shell text. Exit status 125 and a `warren-sandbox:` line on stderr mean it failed.
 */
export const PROLOGUE = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  '  echo $$ > "$1" || { echo "warren-sandbox: cannot join cgroup $1" >&2; exit 125; }',
  '  shift; n=$((n - 1))',
  'done',
  'perl=$1; closer=$2; shift 2',
  'high=',
  'for f in /proc/self/fd/*; do',
  '  fd=${f##*/}',
  '  case $fd in',
  `    [0-${KEPT_FDS - 1}]) ;;`,
  '    [0-9]) eval "exec $fd>&-" ;;',
  '    *) [ -e "$f" ] && high=1 ;;',
  '  esac',
  'done',
  'if [ -n "$high" ]; then',
  '  [ -x "$perl" ] || { echo "warren-sandbox: inherited descriptors above 9 need perl to be closed (apt-get install -y perl-base)" >&2; exit 125; }',
  '  exec "$perl" -e "$closer" -- "$@"',
  'fi',
  'exec "$@"',
].join('\n');

let perlPath: string | undefined;

/** /usr/bin/perl (or /bin/perl) if executable, else '' (the prologue then fails only if it needs it). */
function findPerl(): string {
  if (perlPath === undefined) {
    perlPath = '';
    for (const candidate of ['/usr/bin/perl', '/bin/perl']) {
      try {
        accessSync(candidate, constants.X_OK);
        perlPath = candidate;
        break;
      } catch {
        // try the next one
      }
    }
  }
  return perlPath;
}

/**
 * The argv for `/bin/sh` that joins `procsFiles` (cgroup.procs paths), closes inherited
 * descriptors >= {@link KEPT_FDS} and execs `command`.
 */
export function prologueArgv(procsFiles: readonly string[], command: readonly string[]): string[] {
  return ['-c', PROLOGUE, 'warren-sandbox', String(procsFiles.length), ...procsFiles, findPerl(), PERL_CLOSER, ...command];
}
