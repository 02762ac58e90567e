/**
 * Escape battery, part 1: files, /proc, the environment and signals. Every agent runs exactly as
 * the supervisor runs it (see support/fixture.ts); every test checks the errno seen inside AND the
 * host side (hashes, the process table, namespaces), and shows with a control in the same sandbox
 * that the same kind of call works where it is allowed.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commOf, E, namespaceOf, parseProbe, repo, sha256File, sha256Tree, statusField, succeeded, Warren } from './support/fixture.js';
import { perl } from './support/probes.js';

let warren: Warren;
beforeAll(async () => {
  warren = await Warren.open();
});
afterAll(() => warren?.close());

/** Perl string literal for `text` (single-quoted; the battery's paths hold no quote or backslash). */
const q = (text: string): string => {
  if (/['\\]/.test(text)) throw new Error(`unexpected quote in ${text}`);
  return `'${text}'`;
};

describe('reading outside the home', () => {
  it('cannot read /etc/shadow, /root, the state database, the policies or another agent home', async () => {
    const other = await warren.spawn('other', ['/bin/sh', '-c', 'echo other-secret > "$HOME/secret.txt"; echo ok']);
    await other.sandbox.exited;
    const otherHome = other.account.home;
    const before = {
      shadow: sha256File('/etc/shadow'),
      db: sha256File(warren.databasePath),
      policies: sha256Tree(warren.policiesDir),
      repoPolicies: sha256Tree(join(repo, 'policies')),
      otherHome: sha256Tree(otherHome),
    };
    const body = `
      my $home = $ENV{HOME};
      try_open('shadow', '<', '/etc/shadow');
      try_open('shadow_via_pid1_root', '<', '/proc/1/root/etc/shadow');
      out('root_dir', opendir(my $d, '/root') ? 'ok' : err());
      try_open('db_host_path', '<', ${q(warren.databasePath)});
      try_open('db_repo_var', '<', '/repo/var/warren.db');
      try_open('policy_host_path', '<', ${q(join(warren.policiesDir, 'policy.csv'))});
      try_open('policy_repo_path', '<', ${q(join(repo, 'policies', 'policy.csv'))});
      try_open('policy_in_repo_mount', '<', '/repo/policies/policy.csv');
      try_open('other_home_host_path', '<', ${q(join(otherHome, 'secret.txt'))});
      try_open('other_credentials_host_path', '<', ${q(join(otherHome, '.warren', 'credentials'))});
      try_open('other_home_in_sandbox', '<', ${q(`/home/${other.name}/secret.txt`)});
      out('other_socket_dir', opendir(my $s, ${q(join(warren.stateDir, 'run', 'agents', other.name))}) ? 'ok' : err());
      # controls: what the agent may read
      try_open('own_credentials', '<', "$home/.warren/credentials");
      try_open('passwd', '<', '/etc/passwd');
      if (open(my $p, '<', '/etc/passwd')) { my @lines = <$p>; out('passwd_lines', scalar @lines) }
      try_open('repo_package_json', '<', '/repo/package.json');
    `;
    const agent = await warren.spawn('reader', perl(body));
    expect(succeeded(await agent.sandbox.exited), agent.log()).toBe(true);
    const r = parseProbe(agent.log());
    expect(r).toMatchObject({
      shadow: E('ENOENT'),
      shadow_via_pid1_root: E('EACCES'),
      root_dir: E('ENOENT'),
      db_host_path: E('ENOENT'),
      db_repo_var: E('ENOENT'),
      policy_host_path: E('ENOENT'),
      policy_repo_path: E('ENOENT'),
      policy_in_repo_mount: E('ENOENT'),
      other_home_host_path: E('ENOENT'),
      other_credentials_host_path: E('ENOENT'),
      other_home_in_sandbox: E('ENOENT'),
      other_socket_dir: E('ENOENT'),
      own_credentials: 'ok',
      passwd: 'ok',
      // the generated passwd: root and the agent only, not the host's
      passwd_lines: '2',
      repo_package_json: 'ok',
    });
    expect(sha256File('/etc/shadow')).toBe(before.shadow);
    expect(sha256File(warren.databasePath)).toBe(before.db);
    expect(sha256Tree(warren.policiesDir)).toBe(before.policies);
    expect(sha256Tree(join(repo, 'policies'))).toBe(before.repoPolicies);
    expect(sha256Tree(otherHome)).toBe(before.otherHome);
    expect(agent.log()).not.toContain('other-secret');
  });
});

describe('writing outside the home', () => {
  it('every path outside the home and /tmp is read-only, a planted symlink or hard link included', async () => {
    const runDir = join(warren.stateDir, 'run', 'agents');
    const watched = [
      join(repo, 'package.json'),
      join(repo, 'packages', 'agent-runner', 'package.json'),
      join(repo, 'agents', 'bin', 'report.mjs'),
      '/etc/shadow',
      '/etc/passwd',
    ];
    const before = new Map(watched.map((p) => [p, sha256File(p)]));
    const perlLinks = statSync('/usr/bin/perl').nlink;
    const body = `
      my $home = $ENV{HOME};
      try_open('usr', '>>', '/usr/bin/warren-battery');
      try_open('root_fs', '>>', '/planted');
      try_open('etc_passwd', '>>', '/etc/passwd');
      try_open('etc_new', '>>', '/etc/cron.d-planted');
      try_open('repo_package_json', '>>', '/repo/package.json');
      try_open('runner_package_json', '>>', '/opt/warren/agent-runner/package.json');
      try_open('agents_bin', '>>', '/opt/warren/agents/bin/report.mjs');
      try_open('run_warren', '>>', '/run/warren/planted');
      try_open('proc_sys', '>>', '/proc/sys/kernel/hostname');
      try_open('dev', '>>', '/dev/planted');
      symlink('/etc/shadow', "$home/escape") or out('symlink', err());
      try_open('through_symlink', '>>', "$home/escape");
      out('hardlink', link('/usr/bin/perl', "$home/perl-link") ? 'ok' : err());
      out('rename_out', rename("$home/escape", '/usr/escape') ? 'ok' : err());
      # controls: the home and /tmp are writable
      try_open('home', '>>', "$home/inside.txt");
      try_open('tmp', '>>', '/tmp/inside.txt');
    `;
    const agent = await warren.spawn('writer', perl(body));
    await agent.sandbox.exited;
    const socketDir = join(runDir, agent.name, 'socket');
    const r = parseProbe(agent.log());
    // Files the agent could not write anyway (root's, mode 0644) answer EACCES before the mount
    // is looked at; where only the read-only mount stands in the way (/usr, /, /etc, the
    // agent-owned runner socket directory) the answer is EROFS.
    expect(r).toMatchObject({
      usr: E('EROFS'),
      root_fs: E('EROFS'),
      etc_passwd: E('EACCES'),
      etc_new: E('EROFS'),
      repo_package_json: E('EACCES'),
      runner_package_json: E('EACCES'),
      agents_bin: E('EACCES'),
      run_warren: E('EROFS'),
      proc_sys: E('EACCES'),
      dev: E('EACCES'),
      through_symlink: E('EROFS'),
      hardlink: E('EXDEV'),
      rename_out: E('EXDEV'),
      home: 'ok',
      tmp: 'ok',
    });
    expect(r.symlink).toBeUndefined();
    for (const [path, hash] of before) expect(sha256File(path), path).toBe(hash);
    expect(statSync('/usr/bin/perl').nlink).toBe(perlLinks);
    expect(readdirSync(socketDir)).toEqual(['agent.sock']);
    expect(readFileSync(join(runDir, agent.name, 'passwd'), 'utf8')).toBe(agent.spec.passwd);
    const made = statSync(join(agent.account.home, 'inside.txt'));
    expect([made.uid, made.gid]).toEqual([agent.account.uid, agent.account.gid]);
  });
});

describe('/proc and the environment', () => {
  it('cannot read /proc/1/environ or /proc/1/mem, and never sees a canary from the supervisor environment', async () => {
    const canary = Warren.marker();
    process.env.WARREN_BATTERY_CANARY = canary;
    try {
      // Control: the canary is in the supervisor's environment, and a child that inherits it sees it.
      const inherited = spawnSync('/bin/sh', ['-c', 'printf %s "$WARREN_BATTERY_CANARY"'], { encoding: 'utf8' });
      expect(inherited.stdout).toBe(canary);
      const body = `
        try_open('pid1_environ', '<', '/proc/1/environ');
        try_open('pid1_mem', '<', '/proc/1/mem');
        try_open('pid1_root', '<', '/proc/1/root/');
        if (open(my $c, '<', '/proc/1/comm')) { my $comm = <$c>; chomp $comm; out('pid1_comm', $comm) }
        try_open('self_mem', '<', '/proc/self/mem');
        # the canary arrives reversed, so that this program's own command line does not hold it
        my $canary = reverse ${q([...canary].reverse().join(''))};
        my ($seen, $named, $scanned) = (0, 0, 0);
        opendir(my $d, '/proc') or die;
        for my $pid (grep { /^\\d+$/ } readdir $d) {
          for my $f ('environ', 'cmdline') {
            open(my $fh, '<', "/proc/$pid/$f") or next;
            local $/; my $text = <$fh> // '';
            $scanned++;
            $seen++ if index($text, $canary) >= 0;
            $named++ if $f eq 'environ' && index($text, 'WARREN_BATTERY_CANARY=') >= 0;
          }
        }
        out('canary_seen', $seen);
        out('canary_named', $named);
        out('proc_files_scanned', $scanned);
        out('env_canary', exists $ENV{WARREN_BATTERY_CANARY} ? 'present' : 'absent');
        open(my $e, '<', '/proc/self/environ') or die; local $/; my $env = <$e>;
        out('own_environ_has_agent', index($env, "WARREN_AGENT=$ENV{WARREN_AGENT}") >= 0 ? 'yes' : 'no');
        hold();
      `;
      const agent = await warren.spawn('procfs', perl(body));
      await agent.waitForLog('probes-done');
      const r = parseProbe(agent.log());
      expect(r).toMatchObject({
        pid1_environ: E('EACCES'),
        pid1_mem: E('EACCES'),
        pid1_root: E('EACCES'),
        pid1_comm: 'bwrap',
        self_mem: 'ok',
        canary_seen: '0',
        canary_named: '0',
        env_canary: 'absent',
        own_environ_has_agent: 'yes',
      });
      expect(Number(r.proc_files_scanned)).toBeGreaterThanOrEqual(2);
      // Host side: pid 1 inside is the sandbox's own bwrap, not the host's init; the agent is in
      // another pid namespace, its environment (read by root on the host) has no canary.
      expect(commOf(1)).not.toBe('bwrap');
      const pids = agent.hostPids();
      expect(pids.length).toBeGreaterThan(0);
      for (const pid of pids) {
        expect(namespaceOf(pid, 'pid')).not.toBe(namespaceOf('self', 'pid'));
        expect(readFileSync(`/proc/${pid}/environ`, 'latin1')).not.toContain(canary);
        expect(readFileSync(`/proc/${pid}/environ`, 'latin1')).toContain(`WARREN_AGENT=${agent.name}`);
      }
      await agent.sandbox.stop(2000);
    } finally {
      delete process.env.WARREN_BATTERY_CANARY;
    }
  });
});

describe('signals and ptrace', () => {
  it('cannot signal or ptrace the supervisor or another agent, only its own processes', async () => {
    let supervisorSignals = 0;
    const onUsr2 = (): void => {
      supervisorSignals++;
    };
    process.on('SIGUSR2', onUsr2);
    try {
      const neighbour = await warren.spawn(
        'target',
        perl(`$SIG{USR2} = sub { print "got-usr2\\n" }; print "target-ready\\n"; for (1 .. 600) { select(undef, undef, undef, 0.05) }`),
      );
      await neighbour.waitForLog('target-ready');
      const [neighbourPid] = neighbour.hostPids().filter((p) => commOf(p) === 'perl');
      expect(neighbourPid).toBeDefined();
      const body = `
        $SIG{USR2} = 'IGNORE';
        out('supervisor_visible', -e '/proc/${process.pid}' ? 'yes' : 'no');
        sc('kill0_supervisor', 62, ${process.pid}, 0);
        sc('kill_supervisor', 62, ${process.pid}, 12);
        sc('kill_neighbour', 62, ${neighbourPid}, 12);
        sc('kill_everyone', 62, -1, 12);
        sc('ptrace_supervisor', 101, 16, ${process.pid}, 0, 0);
        sc('ptrace_neighbour', 101, 16, ${neighbourPid}, 0, 0);
        sc('process_vm_readv_supervisor', 310, ${process.pid}, 0, 0, 0, 0, 0);
        # controls: its own child can be signalled; ptrace is refused even there (seccomp)
        my $child = fork();
        if ($child == 0) { for (1 .. 600) { select(undef, undef, undef, 0.05) } POSIX::_exit(0) }
        sc('kill_own_child', 62, $child, 0);
        sc('ptrace_own_child', 101, 16, $child, 0, 0);
        kill 'KILL', $child; waitpid($child, 0);
        hold();
      `;
      const agent = await warren.spawn('signaller', perl(body));
      await agent.waitForLog('probes-done');
      const r = parseProbe(agent.log());
      expect(r).toMatchObject({
        supervisor_visible: 'no',
        kill0_supervisor: E('ESRCH'),
        kill_supervisor: E('ESRCH'),
        kill_neighbour: E('ESRCH'),
        kill_everyone: E('ESRCH'),
        ptrace_supervisor: E('EPERM'),
        ptrace_neighbour: E('EPERM'),
        process_vm_readv_supervisor: E('EPERM'),
        kill_own_child: 'ok:0',
        ptrace_own_child: E('EPERM'),
      });
      // Host side: nothing arrived, nothing is traced, the neighbour still runs.
      expect(supervisorSignals).toBe(0);
      expect(neighbour.log()).not.toContain('got-usr2');
      expect(statusField('self', 'TracerPid')).toBe('0');
      expect(statusField(neighbourPid!, 'TracerPid')).toBe('0');
      expect(neighbour.hostPids()).toContain(neighbourPid);
      // Control: the neighbour does react to SIGUSR2 when the host sends it.
      process.kill(neighbourPid!, 'SIGUSR2');
      await neighbour.waitForLog('got-usr2');
      expect(supervisorSignals).toBe(0);
      await Promise.all([agent.sandbox.stop(2000), neighbour.sandbox.stop(2000)]);
    } finally {
      process.off('SIGUSR2', onUsr2);
    }
  });
});
