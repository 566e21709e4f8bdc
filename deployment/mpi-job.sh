#!/usr/bin/env bash
# A batch job launched with MPI (dask-mpi): rank 0 is the scheduler, rank 1 runs the
# pipeline, ranks 2.. are workers. Needs `pip install 'redoxflow[mpi]'` and an MPI library.
#SBATCH --job-name=redoxflow-mpi
#SBATCH --ntasks=18
#SBATCH --cpus-per-task=4
#SBATCH --mem-per-cpu=4G
#SBATCH --time=04:00:00
set -euo pipefail
CONFIG=${1:?usage: sbatch mpi-job.sh CONFIG.yaml}
srun --mpi=pmix redoxflow run "$CONFIG" --cluster mpi
