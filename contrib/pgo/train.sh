#!/usr/bin/env bash
# The training run of the profile-guided build (contrib/pgo/README.md): runs
# BINARY over the work the profile should favour, in WORKDIR.
#
#   contrib/pgo/train.sh BINARY WORKDIR [HOURS]
#
# The replay of the benchmark's week (benches/replay-week.toml, HOURS of it,
# 168 by default) dominates the profile, under the C++ runner, the Rust
# runner and with the server modelled; every committed scenario, two sweeps,
# the writers of `--out`, `plan` and the trace tools are run too, so that
# none of them is laid out as code that never runs. Any failure stops it.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 BINARY WORKDIR [HOURS]" >&2
  exit 2
fi
BIN="$(realpath "$1")"
WORK="$2"
HOURS="${3:-168}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$WORK"
WORK="$(realpath "$WORK")"
run() { echo "+ $*" >&2; "$@"; }

run "$BIN" -q trace synth --seed 42 --hours "$HOURS" --set background-per-hour=3000 \
  --set evaluations-per-day=20 --set burst-median=3000 -o "$WORK/replay-week.csv"
run "$BIN" -q trace check "$WORK/replay-week.csv" >/dev/null
run "$BIN" -q trace stats "$WORK/replay-week.csv" >/dev/null

cp "$ROOT/benches/replay-week.toml" "$WORK/week-cpp.toml"
{ cat "$ROOT/benches/replay-week.toml"; printf '[hydra]\nrunner = "rust"\n'; } >"$WORK/week-rust.toml"
{ cat "$ROOT/benches/replay-week.toml"; printf '[hydra]\nrunner = "cpp"\n[server]\nlocal_workers = 64\n'; } \
  >"$WORK/week-server.toml"
for variant in cpp rust server; do
  run "$BIN" -q simulate "$WORK/week-$variant.toml" --json >/dev/null
done

for scenario in quick-start hydra-nixos-2017 server-bottleneck; do
  run "$BIN" -q simulate "$ROOT/scenarios/$scenario.toml" --out "$WORK/out-$scenario" --record-passes >/dev/null
done
for sweep in sweep-quick-start sweep-runner; do
  run "$BIN" -q sweep "$ROOT/scenarios/$sweep.toml" --out "$WORK/$sweep" >/dev/null
done

example="$ROOT/scenarios/example"
run "$BIN" -q plan -c "$example/conf.json" -s "$example/status.json" -f "$example/fleet.json" >/dev/null
