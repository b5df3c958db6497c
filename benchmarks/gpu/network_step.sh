#!/usr/bin/env bash
# Benchmark 1 on a GPU, eager (about 2 minutes on an H100/H200): one training step of 3D_FCN_PPM and of nnU-Net's
# default network at the paper's settings (batch 4, 64x160x160) in fp32 / fp16 / bf16 autocast, with and without
# channels_last_3d; and nnU-Net's default at its KiTS-like plan (batch 2, 128^3). torch.compile: network_step_compile.sh.
# From the repository root, with .whl carried:   bash benchmarks/gpu/network_step.sh
source benchmarks/gpu/setup.sh
cd benchmarks
python3 network_step.py --device cuda --patch 64 160 160 --batch 4 --precision fp32 fp16 bf16 --channels-last \
    --steps 10 --record
python3 network_step.py --device cuda --networks nnunet --patch 128 128 128 --batch 2 --precision fp16 bf16 \
    --steps 10 --record
