#!/usr/bin/env bash
# One multi-GPU node (or an interactive GPU session): dask-cuda starts one worker per GPU
# with pinned CUDA_VISIBLE_DEVICES, a host-memory limit and device-to-host spilling.
#   pip install 'redoxflow[ml,gpu]' -c constraints.txt
#   bash deployment/gpu-node.sh configs/gpu.yaml
set -euo pipefail
CONFIG=${1:?usage: gpu-node.sh CONFIG.yaml}
# `cluster: cuda` in the config starts a LocalCUDACluster (one worker per visible GPU);
# restrict the GPUs with CUDA_VISIBLE_DEVICES=0,1 if the node is shared.
exec redoxflow run "$CONFIG" --cluster cuda
