/**
 * Small programs the battery runs inside sandboxes. Perl gives raw system calls with their errno
 * (`syscall(NR, …)`); each probe prints `name=ok[:value]` or `name=errno:N`, which
 * `parseProbe` turns into a record and `E('EPERM')` matches.
 *
 * x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) and flag values
 * (linux/sched.h, asm-generic/ioctls.h, linux/socket.h) are written out where they are used.
 */

/**
 * Perl helpers: `out(name, value)`, `sc(name, NR, args…)` for a raw syscall, `try_open(name,
 * mode, path)`, `try_connect_unix(name, path)`, `try_connect_inet(name, host, port)` and
 * `hold()`, which prints `probes-done` and then waits (at most 30 s) to be stopped or for
 * `$HOME/release` to appear.
 */
export const PERL_PRELUDE = String.raw`
use strict; use warnings; use POSIX (); use Socket;
$| = 1;
sub out { print "$_[0]=$_[1]\n" }
sub err { return 'errno:' . ($! + 0) }
sub sc { my ($name, $nr, @args) = @_; my $r = syscall($nr, @args); out($name, $r == -1 ? err() : "ok:$r"); return $r }
sub try_open {
  my ($name, $mode, $path) = @_;
  if (open(my $fh, $mode, $path)) { out($name, 'ok'); close $fh } else { out($name, err()) }
}
sub try_connect_unix {
  my ($name, $path) = @_;
  socket(my $s, AF_UNIX, SOCK_STREAM, 0) or return out($name, 'socket-' . err());
  if (connect($s, pack_sockaddr_un($path))) { out($name, 'ok') } else { out($name, err()) }
  close $s;
}
sub try_connect_inet {
  my ($name, $family, $packed, $port) = @_;
  socket(my $s, $family, SOCK_STREAM, 0) or return out($name, 'socket-' . err());
  my $addr = $family == AF_INET ? pack_sockaddr_in($port, $packed) : pack_sockaddr_in6($port, $packed);
  if (connect($s, $addr)) { out($name, 'ok') } else { out($name, err()) }
  close $s;
}
sub hold {
  print "probes-done\n";
  for (1 .. 600) { exit 0 if -e "$ENV{HOME}/release"; select(undef, undef, undef, 0.05) }
  exit 0;
}
`;

/** argv running `body` (Perl, after {@link PERL_PRELUDE}) with /usr/bin/perl. */
export function perl(body: string): string[] {
  return ['/usr/bin/perl', '-e', `${PERL_PRELUDE}\n${body}`];
}

/**
 * A /bin/sh program whose whole tree ignores SIGTERM: a setsid'd session with a child, a
 * double-forked orphan, a Perl process that calls setsid and forks away, and the main loop (at
 * most 1000 s). Prints `tree-ready` once everything is started (at least 7 processes).
 */
export const STUBBORN_TREE = [
  "trap '' TERM",
  "setsid sh -c \"trap '' TERM; (trap '' TERM; sleep 1000) & sleep 1000\" &",
  "(sh -c \"trap '' TERM; exec sleep 1000\" &)",
  "perl -e '$SIG{TERM} = q(IGNORE); POSIX::setsid() if eval { require POSIX }; if (fork) { exit 0 } sleep 1000' &",
  'echo tree-ready',
  'i=0; while [ $i -lt 1000 ]; do sleep 1; i=$((i + 1)); done',
].join('\n');
