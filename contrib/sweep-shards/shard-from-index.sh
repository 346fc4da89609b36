#!/bin/sh
# Runs one shard of a sweep as a pod of a Kubernetes Indexed Job (see
# sweep-job.yaml): the shard is JOB_COMPLETION_INDEX + 1 (the index counts
# from 0, shards from 1) of SHARDS, the Job's completions. Usage:
#
#   shard-from-index.sh SWEEP.toml OUT_DIR
#
# OUT_DIR should be shared by the pods (a ReadWriteMany volume) so that
# `hydra-provisioner sweep merge OUT_DIR --out REPORT_DIR` finds every
# shard-K-of-N.json there once the Job has completed.
set -eu
: "${JOB_COMPLETION_INDEX:?is set by a Kubernetes Indexed Job}"
: "${SHARDS:?must be the Job's completions}"
exec "${HYDRA_PROVISIONER:-hydra-provisioner}" sweep "$1" --shard "$((JOB_COMPLETION_INDEX + 1))/$SHARDS" --out "$2"
