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
raw="$parts/.jobs"
rm -rf "$raw"
mkdir -p "$raw"
# The remote side writes its shard file to a temporary directory and prints
# it. GNU parallel stores each job's stdout and stderr in files named after
# the shard (--results), so no shard's output can land under another's name;
# its exit status is checked here, not lost in a pipe.
remote="cd '$here' && d=\$(mktemp -d) && '$bin' sweep '$sweep' --shard {}/$shards --out \"\$d\" >&2 && cat \"\$d\"/shard-{}-of-$shards.json && rm -r \"\$d\""
if ! seq 1 "$shards" |
  parallel --halt now,fail=1 --sshlogin "${logins%,}" --results "$raw/{}" "$remote" >/dev/null; then
  echo "error: a shard failed; the stderr of each shard follows" >&2
  for k in $(seq 1 "$shards"); do
    [ -s "$raw/$k.err" ] && { echo "--- shard $k:" >&2; cat "$raw/$k.err" >&2; }
  done
  exit 1
fi
k=1
while [ "$k" -le "$shards" ]; do
  if [ ! -s "$raw/$k" ]; then
    echo "error: shard $k of $shards returned no shard file; its stderr:" >&2
    if [ -s "$raw/$k.err" ]; then
      cat "$raw/$k.err" >&2
    else
      # GNU parallel's remote worker runs the job with the remote $SHELL and
      # reports success when that shell cannot be started.
      echo "(empty: the job may never have started; is SHELL set for ssh sessions on that host?)" >&2
    fi
    exit 1
  fi
  mv "$raw/$k" "$parts/shard-$k-of-$shards.json"
  k=$((k + 1))
done
rm -r "$raw"
"$bin" sweep merge "$parts" --out "$out"
