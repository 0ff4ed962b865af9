#!/usr/bin/env bash
# micro's codec layer against bare serde calls, in instructions per call
# (valgrind's callgrind): each case runs 1,000 and 11,000 times and the
# difference is divided by 10,000, so start-up and set-up cancel out. Needs
# valgrind and a release build of the bench workspace:
#
#   cargo build --release --manifest-path benches/Cargo.toml --bin codec-count
#   benches/codec-count.sh
set -euo pipefail
bin=$(cd "$(dirname "$0")" && pwd)/target/release/codec-count
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # case, times -> instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" "$1" "$2" >/dev/null 2>&1
  grep '^totals:' "$out/cg" | cut -d' ' -f2
}
per_call() {
  echo $(( ($(count "$1" 11000) - $(count "$1" 1000)) / 10000 ))
}
printf '| case | serde | micro | micro ÷ serde |\n|---|---:|---:|---:|\n'
for size in small large; do
  for op in encode decode; do
    for codec in json msgpack; do
      base=serde
      # micro's JSON ends with Go's newline: the same bytes from serde are the baseline.
      [ "$op/$codec" = encode/json ] && base=serde+newline
      s=$(per_call "$size/$op/$codec/$base")
      m=$(per_call "$size/$op/$codec/micro")
      printf '| %s %s %s (against %s) | %d | %d | %s |\n' "$size" "$op" "$codec" "$base" "$s" "$m" \
        "$(awk -v m="$m" -v s="$s" 'BEGIN { printf "%.3f", m / s }')"
    done
  done
done
