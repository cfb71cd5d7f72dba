#!/usr/bin/env bash
# make_deps.sh — packs the Debian-only build dependencies (headers of doctest, stb, zlib, cblas;
# the OpenMP OpenBLAS and its runtime libraries) into .deps/ (ignored by git), for a GPU machine
# that has CUDA and CMake but none of Debian's -dev packages and no network. gpu_check.sh uses
# .deps when present (-DDFQ_DEPS_PREFIX, LD_LIBRARY_PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps && mkdir -p .deps/include .deps/lib
cp -r /usr/include/doctest /usr/include/stb .deps/include/
cp /usr/include/zlib.h /usr/include/zconf.h .deps/include/
cp /usr/include/x86_64-linux-gnu/openblas-openmp/*.h .deps/include/
ob=/usr/lib/x86_64-linux-gnu/openblas-openmp
cp -L $ob/libopenblas.so.0 .deps/lib/libopenblas.so.0
ln -s libopenblas.so.0 .deps/lib/libopenblas.so
for l in libgfortran.so.5 libquadmath.so.0 libz.so.1; do cp -L /lib/x86_64-linux-gnu/$l .deps/lib/; done
ln -s libz.so.1 .deps/lib/libz.so
# the golden fixtures the tests read (../shared does not travel to the GPU machine)
# (all but the two 45 MB fmnist .pth files, which would not fit the 64 MiB carry limit; gpu_check.sh
# excludes the test cases that read them, saying so)
rm -rf .golden && mkdir -p .golden/pth
for d in losses generator imagenet_resnet18 imagenet_vgg16_bn fmnist_resnet18 quant; do
  [ -d ../shared/golden/$d ] && cp -r ../shared/golden/$d .golden/
done
cp ../shared/golden/pth/tiny_* .golden/pth/
# Fashion-MNIST's test split (the data tests read it; DFQ_FASHION_MNIST_DIR points there)
mkdir -p .golden/fashion-mnist && cp /usr/share/datasets/fashion-mnist/t10k-* .golden/fashion-mnist/
du -sh .deps .golden
