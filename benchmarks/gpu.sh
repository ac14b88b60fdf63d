#!/usr/bin/env bash
# The GPU figures and the CUDA tests, on a CUDA machine, from a clone of the code alone.
#
#   benchmarks/gpu.sh wheels      here, online: the wheels StemDesk needs beyond a CUDA machine's PyTorch image
#                                 (soundfile, pedalboard, platformdirs, and the demucs package for the reference)
#                                 into .gpu-wheels/ (ignored by git; about 6 MB)
#   benchmarks/gpu.sh [OUTDIR]    there: a venv over the machine's own torch with StemDesk from this clone and those
#                                 wheels, then benchmarks/gpu_speed.py (HTDemucs of the released shape; random weights
#                                 unless the real ones are installed) and the CUDA tests; results in OUTDIR
#                                 (default benchmarks/results): gpu_speed.json, cuda-tests.txt
#
# With StemDesk's device tool: run `benchmarks/gpu.sh wheels` first, then run `benchmarks/gpu.sh "$OUT"` there with
# .gpu-wheels carried. Without a GPU the tests skip and the benchmark measures the CPU (a dry run of the script).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(soundfile pedalboard platformdirs demucs julius openunmix)

if [ "${1:-}" = wheels ]; then
    python=${PYTHON:-.venv/bin/python}
    mkdir -p .gpu-wheels
    # the GPU image's Python is 3.12 on x86-64 Linux
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu-wheels "${WHEELS[@]}"
    du -sh .gpu-wheels
    exit 0
fi

out=${1:-benchmarks/results}
mkdir -p "$out"
python=${PYTHON:-python3}
"$python" -c 'import torch; print("torch", torch.__version__, "CUDA:", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
venv=$(mktemp -d)/venv
"$python" -m venv --system-site-packages "$venv"
if [ -d .gpu-wheels ]; then
    "$venv/bin/pip" install --quiet --no-deps --no-index --find-links .gpu-wheels "${WHEELS[@]}"
fi
"$venv/bin/pip" install --quiet --no-deps --no-build-isolation -e . 2>/dev/null \
    || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # an image without setuptools' editable support

# the tests' own HOME and temp folders, as on every machine (scripts/private-home.sh)
source scripts/private-home.sh
status=0
"$venv/bin/python" benchmarks/gpu_speed.py --out "$out/gpu_speed.json" || status=$?
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/core/test_cuda.py tests/core/test_precision.py \
    2>&1 | tee "$out/cuda-tests.txt" || status=$?
exit $status
