#!/usr/bin/env bash
# Installs what Warren needs on a fresh Debian/Ubuntu machine (run as root, Node.js 20 present),
# then the npm dependencies, then builds. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ] || [ -x "/sbin/$1" ]; }
have nats-server || missing+=(nats-server)
have bwrap || missing+=(bubblewrap)
have setpriv || missing+=(util-linux)
have prlimit || missing+=(util-linux)
have mkfs.ext4 || missing+=(e2fsprogs)
have mount || missing+=(mount)
have perl || missing+=(perl-base)
# Repositories tasks work on are mirrored and checked out with git.
have git || missing+=(git)
# `npm run build` compiles the @warren/spawn addon (packages/spawn) with node-gyp: a C compiler,
# make and Python 3. Without them it warns and Warren starts processes with child_process instead.
have cc || missing+=(gcc)
have make || missing+=(make)
have python3 || missing+=(python3)
# The dashboard's browser tests drive Debian's Chromium (playwright-core downloads no browser), and
# a test has Debian's Prometheus scrape /metrics.
have chromium || missing+=(chromium)
have prometheus || missing+=(prometheus)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

node -e 'const [major, minor] = process.versions.node.split(".").map(Number); if (major < 20 || (major === 20 && minor < 9)) { console.error(`setup: Node.js >= 20.9 needed, found ${process.versions.node}`); process.exit(1); }'

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The MCP Inspector CLI (v2), the reference client the MCP tests drive Warren with, needs Node.js
# >= 22.19: Node 22 and the Inspector go under tools/node22/ from the npm registry (skipped when
# there at the pinned versions).
bash scripts/node22.sh install
# The coding-agent CLIs the claude-code, codex and opencode runtimes run (their native binaries,
# from the npm registry) go under tools/agent-clis/ (skipped when there at the pinned versions).
bash scripts/agent-clis.sh install
npm run build
