# Sourced (from the repository root) by the GPU benchmark scripts beside it, on a GPU machine whose image has
# PyTorch but neither nnU-Net nor this package, and no package registry (../shared/device/README.md).
#
# Needs .whl/site-cp312.tar.xz, made once beforehand on a machine with a registry:
#     echo /.whl/ >> .git/info/exclude && ../shared/device/make-site-bundle.sh
# Unpacks nnU-Net's stack into /tmp/site, puts this checkout's package in its installed layout
# (nnunet_ppm, nnunet_ppm.dataset_conversion, nnunet_ppm.postprocessing) into /tmp/ppm, adds an
# `nnunet_ppm` command, points nnUNet_extTrainer at our trainers, and sends results to $OUT.
set -euo pipefail
if [ ! -f .whl/site-cp312.tar.xz ]; then
    echo "missing .whl/site-cp312.tar.xz: run ../shared/device/make-site-bundle.sh first and carry .whl" >&2
    exit 1
fi
mkdir -p /tmp/site /tmp/ppm
tar xJf .whl/site-cp312.tar.xz -C /tmp/site
rm -rf /tmp/ppm/nnunet_ppm
cp -r nnunet_ppm /tmp/ppm/nnunet_ppm
cp -r dataset_conversion /tmp/ppm/nnunet_ppm/dataset_conversion
cp -r postprocessing /tmp/ppm/nnunet_ppm/postprocessing
printf '#!/usr/bin/env python3\nimport sys\nfrom nnunet_ppm.cli import main\nsys.exit(main())\n' > /tmp/site/bin/nnunet_ppm
chmod +x /tmp/site/bin/nnunet_ppm
export PYTHONPATH=/tmp/ppm:/tmp/site PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
export nnUNet_extTrainer=/tmp/ppm/nnunet_ppm/training/nnunet_ext_trainers
export OUT=${OUT:-$PWD/gpu_results}
mkdir -p "$OUT"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(), torch.__version__)"
# keep what the benchmarks append to RESULTS.md even if a later step fails or runs out of time
# (absolute path: the scripts cd into benchmarks/ after sourcing this)
RESULTS_MD=$PWD/benchmarks/RESULTS.md
trap 'cp "$RESULTS_MD" "$OUT/RESULTS.md"' EXIT
