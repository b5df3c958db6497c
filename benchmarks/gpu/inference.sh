#!/usr/bin/env bash
# Benchmark 3 on a GPU (about 5 minutes on an H100/H200): seconds per case of `nnunet_ppm predict` step by step
# (network, CRF, component) next to `nnUNetv2_predict` with default nnU-Net, for a per-kidney ROI and for a
# whole 512x512 CT (full preset), with and without nnU-Net's test-time mirroring. The CRF runs on the GPU.
# From the repository root, with .whl carried:   bash benchmarks/gpu/inference.sh
source benchmarks/gpu/setup.sh
cd benchmarks
python3 inference.py --device cuda --ct-preset full --cases 3 --mirroring off on --work /tmp/inference --record
