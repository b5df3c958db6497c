#!/usr/bin/env bash
# Benchmark 2 on a GPU (about 4-5 minutes on an H100/H200): iterations/s of `nnUNetv2_train` with
# PPMTrainerBenchmark_5epochs (nnU-Net's data loading, 12 augmentation processes by nnU-Net's default) and
# _noDataLoading, next to the network step, at the paper's batch 4 and 64x160x160, fp16 autocast and
# torch.compile as nnU-Net trains on CUDA. Data: 8 synthetic CTs (small preset) generated on the spot.
# From the repository root, with .whl carried:   bash benchmarks/gpu/training_loop.sh
source benchmarks/gpu/setup.sh
cd benchmarks
python3 training_loop.py --device cuda --patch 64 160 160 --batch 4 --cases 8 --network-steps 10 --work /tmp/training_loop \
    --record
