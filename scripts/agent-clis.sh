#!/usr/bin/env bash
# The coding-agent CLIs that the claude-code, codex and opencode runtimes run, under
# tools/agent-clis/ (gitignored by the .gitignore this script writes there), bound read-only into
# sandboxes at /opt/warren/clis. Each comes from the npm registry with its Linux native binary in a
# platform package (an optional dependency); the runtimes run those binaries directly, so neither
# Node 22 (claude-code's wrapper wants it) nor a postinstall step is needed.
#
#   bash scripts/agent-clis.sh install     install when missing or at other versions (idempotent)
#   bash scripts/agent-clis.sh check       exit 0 when installed at the pinned versions
#   bash scripts/agent-clis.sh path        print "<cli> <version> <absolute native binary>" per CLI
#   bash scripts/agent-clis.sh path CLI    print the native binary of claude-code, codex or opencode
#
# Install scripts are skipped (--ignore-scripts): claude-code's postinstall copies its native
# binary over a placeholder and opencode's links one; we use the binaries where the platform
# packages put them. After the install everything runs offline.
set -euo pipefail

CLAUDE_CODE_VERSION=2.1.332
CODEX_VERSION=0.171.0
OPENCODE_VERSION=1.18.33

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/tools/agent-clis"
modules="$prefix/node_modules"
case "$(uname -m)" in
  x86_64) arch=x64; triple=x86_64-unknown-linux-musl ;;
  aarch64) arch=arm64; triple=aarch64-unknown-linux-musl ;;
  *) echo "agent-clis: no native binaries for $(uname -m)" >&2; exit 1 ;;
esac
# opencode's default build needs AVX2 on x64; its "baseline" build does not.
opencode_pkg="opencode-linux-$arch"
if [ "$arch" = x64 ] && ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
  opencode_pkg="opencode-linux-x64-baseline"
fi

binary_of() {
  case "$1" in
    claude-code) echo "$modules/@anthropic-ai/claude-code-linux-$arch/claude" ;;
    codex) echo "$modules/@openai/codex-linux-$arch/vendor/$triple/bin/codex" ;;
    opencode) echo "$modules/$opencode_pkg/bin/opencode" ;;
    *) echo "agent-clis: unknown CLI '$1' (claude-code, codex, opencode)" >&2; return 2 ;;
  esac
}

version_of() {
  case "$1" in
    claude-code) echo "$CLAUDE_CODE_VERSION" ;;
    codex) echo "$CODEX_VERSION" ;;
    opencode) echo "$OPENCODE_VERSION" ;;
  esac
}

# The version the package's package.json names (the binaries' --version may start a runtime).
package_version() {
  local file
  case "$1" in
    claude-code) file="$modules/@anthropic-ai/claude-code/package.json" ;;
    codex) file="$modules/@openai/codex/package.json" ;;
    opencode) file="$modules/opencode-ai/package.json" ;;
  esac
  [ -f "$file" ] || return 1
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$file" | head -n 1
}

installed() {
  local cli
  for cli in claude-code codex opencode; do
    [ -x "$(binary_of "$cli")" ] || return 1
    [ "$(package_version "$cli")" = "$(version_of "$cli")" ] || return 1
  done
}

command="${1:-install}"
[ $# -gt 0 ] && shift
case "$command" in
  install)
    if installed; then
      exit 0
    fi
    echo "agent-clis: installing @anthropic-ai/claude-code $CLAUDE_CODE_VERSION, @openai/codex $CODEX_VERSION and opencode-ai $OPENCODE_VERSION in tools/agent-clis"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    printf '*\n' > "$prefix/.gitignore"
    npm install --prefix "$prefix" --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
      "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" "@openai/codex@$CODEX_VERSION" "opencode-ai@$OPENCODE_VERSION"
    if ! installed; then
      echo "agent-clis: the install in $prefix did not yield the pinned CLIs with their native binaries" >&2
      exit 1
    fi
    ;;
  check)
    installed
    ;;
  path)
    installed || { echo "agent-clis: not installed; run: bash scripts/agent-clis.sh install" >&2; exit 1; }
    if [ $# -gt 0 ]; then
      binary_of "$1"
    else
      for cli in claude-code codex opencode; do
        echo "$cli $(version_of "$cli") $(binary_of "$cli")"
      done
    fi
    ;;
  *)
    echo "agent-clis: unknown command '$command' (install, check, path)" >&2
    exit 2
    ;;
esac
