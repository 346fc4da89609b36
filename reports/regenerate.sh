#!/bin/sh
# Regenerates every committed report from reports/commands.txt, from the
# repository root. HYDRA_PROVISIONER names the binary (default: a release
# build, made first).
set -eu
cd "$(dirname "$0")/.."
if [ -z "${HYDRA_PROVISIONER:-}" ]; then
  cargo build --release --quiet
  HYDRA_PROVISIONER=target/release/hydra-provisioner
fi
grep -v '^#' reports/commands.txt | grep . | while read -r line; do
  echo "+ hydra-provisioner $line" >&2
  case "$line" in
    *' > '*)
      # shellcheck disable=SC2086 # the command's words are meant to split
      "$HYDRA_PROVISIONER" ${line% > *} > "${line##* > }"
      ;;
    *)
      # shellcheck disable=SC2086
      "$HYDRA_PROVISIONER" $line
      ;;
  esac
done
