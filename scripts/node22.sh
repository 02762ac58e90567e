#!/usr/bin/env bash
# Node.js 22 and the MCP Inspector CLI (v2) under tools/node22/ (gitignored), for the tests that
# drive Warren's MCP server with the Inspector: Inspector 2.x needs Node >= 22.19, Warren runs on
# Node 20. Node comes as the official Linux binary from the npm package node-linux-<arch>, so the
# one download path is the npm registry; nothing is installed outside the project.
#
#   bash scripts/node22.sh install          install when missing or at other versions (idempotent)
#   bash scripts/node22.sh check            exit 0 when installed at the pinned versions
#   bash scripts/node22.sh node ARGS...     run Node 22
#   bash scripts/node22.sh inspector ARGS...  run the Inspector, e.g. --cli URL --method tools/list
#
# After the install everything runs offline. Install scripts are skipped (--ignore-scripts): the
# Node binary ships inside the package's tarball, and the Inspector's one script (postinstall:
# scripts/install-clients.mjs) installs its clients' dependencies in a source checkout only and
# exits at once under node_modules. npm runs under Node 20 here and warns that these packages want
# Node 22 (EBADENGINE); that is expected, so the install logs errors only.
set -euo pipefail

NODE22_VERSION=22.23.5
INSPECTOR_VERSION=2.12.0

root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="$root/tools/node22"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node22: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
node22="$prefix/node_modules/node-linux-$arch/bin/node"
inspector_dir="$prefix/node_modules/@modelcontextprotocol/inspector"
inspector_cli="$inspector_dir/clients/launcher/build/index.js"

installed() {
  [ -x "$node22" ] && [ -f "$inspector_cli" ] || return 1
  [ "$("$node22" --version)" = "v$NODE22_VERSION" ] || return 1
  [ "$("$node22" -p 'require(process.argv[1]).version' "$inspector_dir/package.json")" = "$INSPECTOR_VERSION" ]
}

command="${1:-install}"
[ $# -gt 0 ] && shift
case "$command" in
  install)
    if installed; then
      exit 0
    fi
    echo "node22: installing Node.js $NODE22_VERSION and @modelcontextprotocol/inspector $INSPECTOR_VERSION in tools/node22"
    rm -rf "$prefix"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --ignore-scripts --no-audit --no-fund --loglevel=error \
      "node-linux-$arch@$NODE22_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION"
    if ! installed; then
      echo "node22: the install in $prefix did not yield Node.js $NODE22_VERSION and the Inspector $INSPECTOR_VERSION" >&2
      exit 1
    fi
    ;;
  check)
    installed
    ;;
  node)
    installed || { echo "node22: not installed; run: bash scripts/node22.sh install" >&2; exit 1; }
    exec "$node22" "$@"
    ;;
  inspector)
    installed || { echo "node22: not installed; run: bash scripts/node22.sh install" >&2; exit 1; }
    exec "$node22" "$inspector_cli" "$@"
    ;;
  *)
    echo "node22: unknown command '$command' (install, check, node, inspector)" >&2
    exit 2
    ;;
esac
