#!/usr/bin/env bash
# Benchmark 1 on a GPU with torch.compile (about 4 minutes on an H100/H200, most of it compiling): one training step
# of 3D_FCN_PPM and of nnU-Net's default network at the paper's settings (batch 4, 64x160x160), fp16 autocast
# (nnU-Net's CUDA default), eager and compiled in the same run.
# From the repository root, with .whl carried:   bash benchmarks/gpu/network_step_compile.sh
source benchmarks/gpu/setup.sh
cd benchmarks
python3 network_step.py --device cuda --patch 64 160 160 --batch 4 --precision fp16 --compile --steps 10 --record
