#!/usr/bin/env bash
# Instructions per sequential unary call of one stack, client and server
# counted apart (valgrind's callgrind): the harness makes 1,000 and then
# 3,000 calls, each time with its server under callgrind too, and the
# difference is divided by 2,000, so start-up and warm-up cancel out. The
# stack "micro in-process" is counted with `local-count` (client and handler
# in one process: all its instructions are the client's). Run it inside the
# network namespace, after a release build of the bench workspace:
#
#   cargo build --release --manifest-path benches/Cargo.toml --bin harness --bin local-count
#   ../shared/netns-run benches/call-count.sh "micro json http/1.1" "raw hyper json http/1.1" "micro in-process"
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: call-count.sh <stack name, as the harness table spells it>..." >&2; exit 2; }
release=$(cd "$(dirname "$0")" && pwd)/target/release
bin=$release/harness
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
total() { grep '^totals:' "$1" | cut -d' ' -f2; }
local_count() { # the in-process call -> its table row
  local calls
  for calls in 1000 3000; do
    valgrind --tool=callgrind --callgrind-out-file="$out/local-$calls" "$release/local-count" "$calls" >/dev/null 2>&1
  done
  printf '| micro in-process | %d | (the same process) |\n' $(( ($(total "$out/local-3000") - $(total "$out/local-1000")) / 2000 ))
}
count() { # stack -> its table row
  local stack=$1 calls server client
  [ "$stack" = "micro in-process" ] && { local_count; return; }
  # The server that stack calls: the harness starts each, and names it on its command line.
  local name
  name=$(grep -o -m1 -E 'micro-bare|micro|hyper|tonic|tarpc|tcp' <<<"$stack")
  for calls in 1000 3000; do
    rm -f "$out"/server-*
    valgrind --tool=callgrind --callgrind-out-file="$out/client-$calls" "$bin" --only "$stack" \
      --repeats 1 --seconds 0.01 --calls "$calls" --in-flight 1 --out "$out/table.md" \
      --server-wrapper "valgrind --tool=callgrind --callgrind-out-file=$out/server-%p" >/dev/null 2>&1
    server=$(grep -l -E "^cmd: .* serve $name\$" "$out"/server-*)
    mv "$server" "$out/serving-$calls"
  done
  client=$(( ($(total "$out/client-3000") - $(total "$out/client-1000")) / 2000 ))
  server=$(( ($(total "$out/serving-3000") - $(total "$out/serving-1000")) / 2000 ))
  printf '| %s | %d | %d |\n' "$stack" "$client" "$server"
}
printf '| stack | client instructions/call | server instructions/call |\n|---|---:|---:|\n'
for stack in "$@"; do count "$stack"; done
