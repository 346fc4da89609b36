#!/usr/bin/env bash
# Profile-guided optimisation (PGO, as the rustc book describes it; contrib/pgo/README.md):
# an instrumented build runs a training workload, and the release build is then optimised
# with the profile it recorded. Outputs are the plain release build's, byte for byte.
#
#   contrib/pgo/build.sh                   target/pgo/hydra-provisioner, trained by contrib/pgo/train.sh
#   contrib/pgo/build.sh bench [CARGO_BENCH_ARGS] [-- BENCH_ARGS]
#                                          the criterion benches, trained by running themselves
#
# Needs llvm-profdata of the toolchain's own LLVM: `rustup component add llvm-tools`.
# PGO_HOURS (default 168) sets how many hours of the benchmark's week train the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"

HOST="$(rustc -vV | sed -n 's/^host: //p')"
PROFDATA="$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata"
if [ ! -x "$PROFDATA" ]; then
  echo "$0: $PROFDATA is missing; install it with: rustup component add llvm-tools" >&2
  exit 2
fi
PGO="$ROOT/target/pgo"
BASE_FLAGS="${RUSTFLAGS:-}"

# Runs "$@" (a command or a function) with RUSTFLAGS that instrument what it
# builds, recording into $1.raw/, then merges what it recorded into $1.
# With an explicit --target, RUSTFLAGS reach only the target's crates, not
# build scripts or proc macros, which then neither record profiles while the
# build runs nor take a profile that cannot describe them.
record() {
  local profile="$1" raw="$1.raw"
  shift
  rm -rf "$raw"
  mkdir -p "$raw"
  RUSTFLAGS="$BASE_FLAGS -Cprofile-generate=$raw" LLVM_PROFILE_FILE="$raw/%m_%p.profraw" "$@"
  "$PROFDATA" merge -o "$profile" "$raw"
}

if [ "${1:-}" = bench ]; then
  shift
  # A profile applies only to the code it was recorded from, and the benches
  # link the library built under the bench profile, whose symbols are not the
  # binary's: they record their own, run for a few seconds each under
  # criterion's --profile-time, which measures nothing.
  cargo_args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    cargo_args+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift
  echo "== instrumented benches, training" >&2
  record "$PGO/bench.profdata" cargo bench --locked --target "$HOST" --target-dir "$PGO/bench-instrumented" \
    "${cargo_args[@]}" -- "$@" --profile-time 5
  echo "== optimised benches" >&2
  RUSTFLAGS="$BASE_FLAGS -Cprofile-use=$PGO/bench.profdata" \
    cargo bench --locked --target "$HOST" --target-dir "$PGO/bench-optimised" "${cargo_args[@]}" -- "$@"
  exit
fi

build_and_train() {
  cargo build --release --locked --target "$HOST" --target-dir "$PGO/instrumented" --bin hydra-provisioner
  rm -rf "$PGO/train"
  contrib/pgo/train.sh "$PGO/instrumented/$HOST/release/hydra-provisioner" "$PGO/train" "${PGO_HOURS:-168}"
}
echo "== instrumented build, training" >&2
record "$PGO/hydra-provisioner.profdata" build_and_train
echo "== optimised build" >&2
RUSTFLAGS="$BASE_FLAGS -Cprofile-use=$PGO/hydra-provisioner.profdata" \
  cargo build --release --locked --target "$HOST" --target-dir "$PGO/optimised" --bin hydra-provisioner
cp "$PGO/optimised/$HOST/release/hydra-provisioner" "$PGO/hydra-provisioner"
echo "built $PGO/hydra-provisioner" >&2
