#!/usr/bin/env bash
# The GPU rows of whole-CT speed (about 8 minutes on an H100/H200, an estimate; its whole_ct.py step took 13 on
# the CPU here): `nnunet_ppm predict-ct` end to end against `nnUNetv2_predict` of default nnU-Net on the same 3
# whole CTs (benchmarks/whole_ct.py --against-nnunet -device cuda: stage times, peak memory, ratio), then the CRF
# mean field per probability kind x image noise with torch on the GPU (benchmarks/postprocessing_speed.py
# --reference torch-cpu: the GPU machine's Python has no pydensecrf, so the labels are compared with torch on one
# CPU thread, whose agreement with pydensecrf the CPU rows give).
#
# Carry .whl (../shared/device/make-site-bundle.sh) and .gpu_data, the first 11 KiTS19 label maps (the whole
# folder, 51 MB, does not fit beside the 40 MB bundle in a run's 64 MiB), made once from the repository root with
#     mkdir -p .gpu_data/kits19-labels && cp ../shared/data/kits19-labels/case_000{00..10}.nii.gz .gpu_data/kits19-labels/
# The CPU row on the same label maps, for comparison:
#     NNUNET_PPM_SHARED_DATA=$PWD/.gpu_data python benchmarks/whole_ct.py --cases 3 --predict-cases 3 \
#         --against-nnunet --work W --record
# From the repository root:   bash benchmarks/gpu/whole_ct.sh
source benchmarks/gpu/setup.sh
if [ ! -d .gpu_data/kits19-labels ]; then
    echo "missing .gpu_data/kits19-labels: see this script's header, and carry .gpu_data" >&2
    exit 1
fi
# nnUNet_compile=f: the plumbing models' two training iterations without torch.compile's minutes (prediction
# does not compile either way)
export NNUNET_PPM_SHARED_DATA=$PWD/.gpu_data nnUNet_compile=f
cd benchmarks
python3 whole_ct.py --cases 3 --predict-cases 3 --against-nnunet -device cuda --work /tmp/whole_ct --record
cp RESULTS.md "$OUT/RESULTS.md"
python3 postprocessing_speed.py --mean-field-only --reference torch-cpu --probabilities network uncertain crafted \
    --noise 0 10 20 30 --record
