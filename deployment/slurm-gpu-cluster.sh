#!/usr/bin/env bash
# Several GPU nodes under one SLURM allocation: a scheduler on the first node, one
# `dask cuda worker` per node (one worker process per GPU), then the pipeline as the client.
#SBATCH --job-name=redoxflow
#SBATCH --nodes=4
#SBATCH --gpus-per-node=4
#SBATCH --exclusive
#SBATCH --time=04:00:00
set -euo pipefail
CONFIG=${1:?usage: sbatch slurm-gpu-cluster.sh CONFIG.yaml}
SCHED=$PWD/scheduler-$SLURM_JOB_ID.json
# the dashboard stays on localhost: reach it with `ssh -L 8787:localhost:8787 <first node>`
dask scheduler --scheduler-file "$SCHED" --dashboard-address 127.0.0.1:8787 &
srun --ntasks-per-node=1 dask cuda worker --scheduler-file "$SCHED" \
     --memory-limit 0.9 --device-memory-limit 0.8 --local-directory "${TMPDIR:-/tmp}" &
redoxflow run "$CONFIG" --cluster "$SCHED"
