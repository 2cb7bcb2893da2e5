#!/usr/bin/env bash
# Builds node-llama-cpp's llama.cpp binding for CUDA, for one GPU architecture, from the
# llama.cpp source that node-llama-cpp ships (a git bundle in its package: no network), and
# checks the result. The CUDA images run it (deploy/Dockerfile.jetson, deploy/Dockerfile.cuda);
# it runs the same on any Linux host with the CUDA toolkit, from the repository root after
# `npm ci`.
#
#   deploy/build-cuda.sh [--prune] [ARCH]   build, check, and verify on the GPU when one is visible
#   deploy/build-cuda.sh check              the build matches this environment; its libraries resolve
#   deploy/build-cuda.sh verify [MODEL]     load the build on the GPU (and a model: its layers offloaded)
#
# ARCH: the GPU's compute capability without the dot, or a ;-list: 87 Jetson Orin, 90 H100/H200,
# 89 L4/L40/RTX 40xx, 86 A10/RTX 30xx, 80 A100. Default: $CUDA_ARCH, else what nvidia-smi
# reports, else 87 on a Jetson Orin.
# --prune: drop what only rebuilding needs (object files, the llama.cpp clone, prebuilt GPU
# packages) so an image copies only the binaries.
#
# node-llama-cpp finds a local build by its CMake options, which it reads from
# NODE_LLAMA_CPP_CMAKE_OPTION_* variables: this script sets CMAKE_CUDA_ARCHITECTURES there,
# and the processes that run modelswap need the SAME variables (the images set them; on a
# host, the script prints them). Other NODE_LLAMA_CPP_CMAKE_OPTION_* variables pass through
# to llama.cpp's CMake (e.g. NODE_LLAMA_CPP_CMAKE_OPTION_GGML_NATIVE=OFF for a portable CPU part).
set -euo pipefail

cd "$(dirname "$0")/.."
readonly NLC_DIR=node_modules/node-llama-cpp
readonly ARCH_VAR=NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES

say() { printf 'build-cuda: %s\n' "$*"; }
fail() { printf 'build-cuda: error: %s\n' "$*" >&2; exit 1; }

require_node_llama_cpp() {
  [[ -f $NLC_DIR/package.json ]] || fail "no $NLC_DIR here: run npm ci first (from the repository root)"
  command -v node >/dev/null || fail "node is not on PATH: install Node.js 20"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  (( major >= 20 )) || fail "Node.js $(node --version) is too old: modelswap needs Node.js 20 or later"
}

# The GPU architecture: argument, CUDA_ARCH, the CMake option already set, nvidia-smi, a Jetson Orin.
resolve_arch() {
  local arch=${1:-${CUDA_ARCH:-${!ARCH_VAR:-}}}
  if [[ -z $arch ]] && command -v nvidia-smi >/dev/null; then
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .' || true)
    [[ $arch =~ ^[0-9]+$ ]] || arch=""
  fi
  if [[ -z $arch ]] && tr -d '\0' </proc/device-tree/model 2>/dev/null | grep -q 'NVIDIA Jetson.*Orin'; then
    arch=87
  fi
  [[ -n $arch ]] || fail "no GPU architecture given and none detected: pass one, e.g. deploy/build-cuda.sh 87 (Jetson Orin), 90 (H100/H200), 89 (L4, RTX 40xx), 86 (A10, RTX 30xx); docker build: --build-arg CUDA_ARCH=90"
  [[ $arch =~ ^[0-9]{2,3}[af]?(-real|-virtual)?(\;[0-9]{2,3}[af]?(-real|-virtual)?)*$ ]] ||
    fail "\"$arch\" is not a CUDA architecture: give the compute capability without the dot, like 87, or a list like \"86;89\""
  printf '%s' "$arch"
}

find_nvcc() {
  local nvcc=${CUDACXX:-}
  [[ -n $nvcc ]] || nvcc=$(command -v nvcc || true)
  [[ -n $nvcc ]] || { [[ -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc; }
  [[ -n $nvcc && -x $nvcc ]] ||
    fail "nvcc not found: install the CUDA toolkit (JetPack's nvidia-jetpack / cuda-toolkit-12-x), put its bin/ on PATH or set CUDACXX=/usr/local/cuda/bin/nvcc"
  printf '%s' "$nvcc"
}

# cuBLAS must come with the toolkit (llama.cpp's CUDA backend links it): a bare nvcc is not enough.
require_cublas() {
  local nvcc=$1 include
  include=$("$nvcc" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -n1)
  [[ -n $include && -f $include/cublas_v2.h ]] ||
    fail "the CUDA toolkit of $nvcc has no cuBLAS headers (cublas_v2.h in ${include:-its include folder}): install cuBLAS (libcublas-dev-12-x; on a Jetson it comes with nvidia-jetpack / the l4t-jetpack image)"
}

gpu_visible() {
  [[ -e /dev/nvidia0 || -e /dev/nvhost-ctrl-gpu || -e /dev/nvgpu/igpu0/ctrl ]] && return 0
  command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1
}

# Every library the binding loads resolves, except the driver's libcuda (mounted by the
# NVIDIA container runtime, or installed with the driver).
check_libraries() {
  local dir=$1 file missing=0 line
  while IFS= read -r -d '' file; do
    while IFS= read -r line; do
      [[ $line == *"not found"* ]] || continue
      [[ $line == *libcuda.so* || $line == *libnvidia-ml.so* ]] && continue
      printf 'build-cuda: %s needs %s\n' "${file##*/}" "$line" >&2
      missing=1
    done < <(ldd "$file" 2>/dev/null || true)
  done < <(find "$dir" -maxdepth 1 \( -name '*.so*' -o -name '*.node' \) -type f -print0)
  (( missing == 0 )) || fail "libraries of the CUDA build are missing here (above): install them (libgomp1, the CUDA runtime and cuBLAS of the toolkit it was built with)"
}

# The CUDA build that node-llama-cpp will pick with this environment's CMake options, and its libraries.
cmd_check() {
  require_node_llama_cpp
  local dir
  dir=$(node deploy/verify-cuda.mjs dir) || fail "node-llama-cpp would not find the CUDA build with this environment (above)"
  say "node-llama-cpp picks $dir"
  check_libraries "$dir"
  say "its libraries resolve (libcuda comes with the driver at run time)"
}

cmd_verify() {
  require_node_llama_cpp
  node deploy/verify-cuda.mjs load "$@"
}

cmd_build() {
  local prune=0 arch_arg=""
  while (($#)); do
    case $1 in
      --prune) prune=1 ;;
      -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
      -*) fail "unknown option $1 (see deploy/build-cuda.sh --help)" ;;
      *) arch_arg=$1 ;;
    esac
    shift
  done
  require_node_llama_cpp
  local arch nvcc
  arch=$(resolve_arch "$arch_arg")
  nvcc=$(find_nvcc)
  export CUDACXX=$nvcc PATH="$(dirname "$nvcc"):$PATH"
  require_cublas "$nvcc"
  export "$ARCH_VAR=$arch"
  for tool in cmake git make c++; do command -v "$tool" >/dev/null || fail "$tool is not on PATH: install build-essential cmake git"; done
  [[ -f $NLC_DIR/llama/gitRelease.bundle ]] ||
    fail "$NLC_DIR has no llama.cpp source bundle (llama/gitRelease.bundle): reinstall node-llama-cpp with npm ci"

  say "node-llama-cpp $(node -p "require('./$NLC_DIR/package.json').version"), llama.cpp $(node -p "require('./$NLC_DIR/llama/binariesGithubRelease.json').release") (bundled source)"
  say "nvcc: $nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*' || echo 'version unknown'))"
  say "cmake $(cmake --version | head -n1 | grep -o '[0-9][0-9.]*'), $(c++ --version | head -n1), node $(node --version), $(uname -m)"
  say "CUDA architectures: $arch; CMake options: $(env | grep '^NODE_LLAMA_CPP_CMAKE_OPTION_' | sort | tr '\n' ' ')"

  local started=$SECONDS
  # Clones llama.cpp from the bundle node-llama-cpp ships (the default release, so no download).
  npx --no node-llama-cpp source download --gpu cuda --skipBuild --noUsageExample
  npx --no node-llama-cpp source build --gpu cuda --noUsageExample

  local dir
  dir=$(node deploy/verify-cuda.mjs dir) || fail "the build finished but node-llama-cpp does not find it (above)"
  say "built in $((SECONDS - started)) s: $dir"
  find "$dir" -maxdepth 1 \( -name '*.so*' -o -name '*.node' \) -type f -printf '  %f %s bytes\n' | sort
  if command -v cuobjdump >/dev/null || [[ -x $(dirname "$nvcc")/cuobjdump ]]; then
    local cuobjdump
    cuobjdump=$(command -v cuobjdump || echo "$(dirname "$nvcc")/cuobjdump")
    say "GPU code in libggml-cuda: $("$cuobjdump" --list-elf "$dir"/libggml-cuda.so 2>/dev/null | grep -o 'sm_[0-9]*[af]*' | sort -u | tr '\n' ' ')$("$cuobjdump" --list-ptx "$dir"/libggml-cuda.so 2>/dev/null | grep -o 'sm_[0-9]*[af]*' | sort -u | sed 's/^/ptx:/' | tr '\n' ' ')"
  fi

  if (( prune )); then
    # Keep Release/ (the binaries) and buildDone.status, which node-llama-cpp looks for.
    find "$(dirname "$dir")" -mindepth 1 -maxdepth 1 ! -name Release ! -name buildDone.status -exec rm -rf {} +
    rm -rf "$NLC_DIR/llama/llama.cpp" node_modules/@node-llama-cpp/*-cuda* node_modules/@node-llama-cpp/*-vulkan*
    say "pruned object files, the llama.cpp clone and the prebuilt GPU packages"
  fi

  cmd_check
  if [[ ${BUILD_CUDA_VERIFY:-auto} == yes ]] || { [[ ${BUILD_CUDA_VERIFY:-auto} == auto ]] && gpu_visible; }; then
    local model=""
    [[ -f models/stories260K.gguf ]] && model=models/stories260K.gguf
    cmd_verify $model
  else
    say "not verified on a GPU: none is visible here (a docker build has none); run deploy/build-cuda.sh verify where the GPU is"
  fi
  say "modelswap finds this build only with the same CMake options in its environment:"
  env | grep '^NODE_LLAMA_CPP_CMAKE_OPTION_' | sort | sed 's/^/  export /'
}

case ${1:-} in
  check) shift; cmd_check "$@" ;;
  verify) shift; cmd_verify "$@" ;;
  build) shift; cmd_build "$@" ;;
  *) cmd_build "$@" ;;
esac
