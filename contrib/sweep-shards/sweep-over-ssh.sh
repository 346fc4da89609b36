#!/bin/sh
# Runs a sweep's shards on other machines with GNU parallel over ssh, then
# merges them here. Usage:
#
#   contrib/sweep-shards/sweep-over-ssh.sh SWEEP.toml OUT_DIR SSHLOGIN...
#
# Each SSHLOGIN (as GNU parallel reads it: `host`, `user@host`, `4/host` for
# four shards at a time there) gets shards one after another; there are as
# many shards as logins unless SHARDS says otherwise. Every host needs
# `hydra-provisioner` of the same version on its PATH (or HYDRA_PROVISIONER
# naming it) and the sweep, its base scenario and its trace at the same
# paths as here (a shared file system or the same checkout): the merge
# refuses shards whose program, sweep, scenario or trace differ. Each shard
# uses all the cores of its host. The merged files are byte for byte those
# of `hydra-provisioner sweep SWEEP.toml --out OUT_DIR` on one machine.
set -eu

if [ $# -lt 3 ]; then
  echo "usage: $0 SWEEP.toml OUT_DIR SSHLOGIN..." >&2
  exit 2
fi
sweep=$1
out=$2
shift 2
shards=${SHARDS:-$#}
bin=${HYDRA_PROVISIONER:-hydra-provisioner}
logins=$(printf '%s,' "$@")
here=$(pwd)

parts="$out/shards"
mkdir -p "$parts"
# The remote side writes its shard file to a temporary directory and prints
# it; GNU parallel keeps each job's output in a file of its own (--files),
# listed in shard order (--keep-order).
remote="cd '$here' && d=\$(mktemp -d) && '$bin' sweep '$sweep' --shard {}/$shards --out \"\$d\" >&2 && cat \"\$d\"/shard-{}-of-$shards.json && rm -r \"\$d\""
seq 1 "$shards" |
  parallel --keep-order --files --tmpdir "$parts" --halt now,fail=1 --sshlogin "${logins%,}" "$remote" |
  {
    k=1
    while read -r file; do
      mv "$file" "$parts/shard-$k-of-$shards.json"
      k=$((k + 1))
    done
  }
"$bin" sweep merge "$parts" --out "$out"
