#!/usr/bin/env bash
# The monitor on linux/aarch64 wheels, on an x86_64 machine, under Debian's qemu-user-static (user-mode
# emulation: an aarch64 Python runs as a process here, no virtual machine). A check of what a Jetson or a
# Raspberry Pi installs from PyPI, not a speed figure: emulation is tens of times slower than a real board.
#
#     bash bench/aarch64_check.sh [WORK_DIR]      # as root, on Debian 12; about 10 minutes and 500 MB
#
# 1. qemu-user-static and debootstrap from Debian; 2. Debian 12's own aarch64 Python 3.11, unpacked from its
# packages into WORK_DIR/root (debootstrap's first stage; no second stage is needed to run Python); 3. the
# aarch64 wheels of faceid's core and standalone-monitor dependencies from PyPI into WORK_DIR/site
# (pip download for another platform), with face_recognition_models copied from this machine's venv (it is
# pure Python); 4. bench/aarch64_monitor.py under emulation: enrolls two people from media/ on a fresh store
# (the models from this machine's cache: the ONNX graphs are the same on every platform) and runs the
# standalone monitor on the Hamilton clip.
#
# onnxruntime is pinned to 1.20.1 here: the newer aarch64 wheels (1.32 tried) stop with a segmentation fault
# at import under qemu 7.2's user emulation, on every CPU model it offers; on a real board they are fine.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/faceid-aarch64}
MEDIA=${MEDIA:-../shared/datasets/media}
PIP=${PIP:-.venv/bin/pip}
mkdir -p "$WORK"

command -v qemu-aarch64-static >/dev/null && command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user-static debootstrap

if [ ! -x "$WORK/root/usr/bin/python3.11" ]; then
    debootstrap --foreign --arch=arm64 --variant=minbase \
        --include=python3.11,libpython3.11-stdlib,zlib1g,libexpat1,libffi8,libssl3 \
        bookworm "$WORK/root" http://deb.debian.org/debian
    for deb in "$WORK"/root/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
fi

if [ ! -d "$WORK/site/onnxruntime" ]; then
    "$PIP" install --quiet --target "$WORK/site" --python-version 3.11 --implementation cp --only-binary=:all: \
        --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
        "numpy>=1.24" "pillow>=10" "onnx>=1.15" "onnxruntime==1.20.1" "tqdm>=4.60" "threadpoolctl>=3.1" \
        "av>=12" "opencv-python-headless>=4.8" "sqlalchemy>=2.0,<2.2" "alembic>=1.13" "faiss-cpu>=1.8"
    cp -r "$(.venv/bin/python -c 'import face_recognition_models, os; print(os.path.dirname(face_recognition_models.__file__))')" "$WORK/site/"
fi

PYTHONPATH="$WORK/site:$PWD/src" FACEID_CACHE_DIR="${FACEID_CACHE_DIR:-$HOME/.cache/faceid}" \
    qemu-aarch64-static -L "$WORK/root" "$WORK/root/usr/bin/python3.11" bench/aarch64_monitor.py "$MEDIA"
