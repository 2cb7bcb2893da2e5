#!/usr/bin/env bash
# The prepared GPU check: one bounded run on a CUDA machine that
#   1. prints the machine, driver and CUDA version (nvidia-smi, nvcc),
#   2. builds node-llama-cpp for the GPU's architecture (nvidia-smi's compute capability) with
#      deploy/build-cuda.sh, the script the CUDA images run,
#   3. runs bench/gpu-check.mjs: two models (stories260K and a forged ~100 MB F16) swapped in
#      one runner-like process, load time, TTFT, tok/s, GPU memory (nvidia-smi, getVramState)
#      before/after each load and unload; then shared runner vs one process per model.
# Figures and the log go to $OUT (gpu-check.json, gpu-check.txt, gpu-check.log) when it is set.
#
#   bench/gpu-check.sh [--dry-run] [--build-only | --skip-build] [--deadline-s 570]
#   bench/gpu-check.sh --pack      (here, before a device run) see below
#
# Without a GPU (or with --dry-run) it says so and runs the same sequence on the CPU: no build.
# Everything ends by the deadline (default 570 s, inside a 10-minute device command); the
# build gets all but 150 s of it. Where the build needs longer, use two calls on the same warm
# machine (the build stays in node_modules there between calls): --build-only, then --skip-build.
#
# A device machine that has no Node.js and cannot reach a registry: `--pack` (run where
# `npm ci` was done) writes .device/gpu-check/ (git-ignored): Node.js with npm, and the
# packages node-llama-cpp needs with the compiled project, its llama.cpp source bundle trimmed
# of models and docs; the run unpacks them when node or node_modules is missing there. Name
# .device/gpu-check in the device call's carry (it counts toward the 64 MiB that travels).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PACK_DIR=.device/gpu-check
say() { printf 'gpu-check: %s\n' "$*"; }
fail() { printf 'gpu-check: error: %s\n' "$*" >&2; exit 1; }

pack() {
  command -v node >/dev/null && [[ -d node_modules/node-llama-cpp ]] || fail "--pack needs node and npm ci done here"
  command -v xz >/dev/null || fail "--pack needs xz"
  [[ -f dist/forge/forge-model.js ]] || npx tsc -p .
  local work node_bin npm_dir
  work=$(mktemp -d)
  trap "rm -rf '$work'" EXIT
  mkdir -p "$PACK_DIR" "$work/node/bin" "$work/node/lib/node_modules"
  node_bin=$(readlink -f "$(command -v node)")
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  cp "$node_bin" "$work/node/bin/node"
  cp -a "$npm_dir" "$work/node/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/node/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/node/bin/npx"
  say "packing Node.js $(node --version) with npm (xz, a few minutes)"
  tar -C "$work" -cf - node | xz -6 -T0 >"$PACK_DIR/node.tar.xz"

  # node-llama-cpp and what it imports (not its prebuilt binaries), and the compiled project.
  node --input-type=module -e '
    import { existsSync, readFileSync } from "node:fs";
    import path from "node:path";
    const seen = new Set();
    const find = (name, from) => { for (let dir = from; ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, "node_modules", name);
      if (existsSync(path.join(candidate, "package.json"))) return candidate;
      if (path.dirname(dir) === dir) return undefined; } };
    const walk = (dir) => { if (seen.has(dir)) return; seen.add(dir);
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
      for (const dep of Object.keys(pkg.dependencies ?? {})) { const found = find(dep, dir); if (found) walk(found); } };
    walk(path.resolve("node_modules/node-llama-cpp"));
    for (const dir of seen) console.log(path.relative(process.cwd(), dir));' | sort >"$work/packages.txt"
  tar -cf "$work/project.tar" --exclude=node_modules/node-llama-cpp/llama/gitRelease.bundle \
    --exclude='node_modules/node-llama-cpp/llama/llama.cpp' --exclude='node_modules/node-llama-cpp/llama/localBuilds' \
    -T "$work/packages.txt" node_modules/.bin dist
  # The llama.cpp source bundle without its vocabulary models, docs and media (not built).
  git -c advice.detachedHead=false clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle "$work/llama.cpp"
  (
    cd "$work/llama.cpp"
    git rm -rq models docs media benches
    # One commit without the original as its parent, so that the bundle holds only the trimmed tree.
    git -c advice.detachedHead=false checkout -q --detach "$(git -c user.name=gpu-check -c user.email=gpu-check@localhost commit-tree "$(git write-tree)" -m "llama.cpp trimmed for the GPU check")"
    git bundle create -q ../gitRelease.bundle HEAD
  )
  mkdir -p "$work/bundle/node_modules/node-llama-cpp/llama"
  mv "$work/gitRelease.bundle" "$work/bundle/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  tar -rf "$work/project.tar" -C "$work/bundle" node_modules/node-llama-cpp/llama/gitRelease.bundle
  xz -6 -T0 <"$work/project.tar" >"$PACK_DIR/project.tar.xz"
  say "packed $(du -sh "$PACK_DIR" | cut -f1) in $PACK_DIR: $(cd "$PACK_DIR" && ls -s --block-size=M | tail -n +2 | tr '\n' ' ')"
  say "device run: command 'bench/gpu-check.sh', carry [\"$PACK_DIR\"]"
}

unpack_if_needed() {
  if ! command -v node >/dev/null && [[ -f $PACK_DIR/node.tar.xz ]]; then
    mkdir -p /tmp/gpu-check-node && tar -C /tmp/gpu-check-node -xJf "$PACK_DIR/node.tar.xz"
    export PATH=/tmp/gpu-check-node/node/bin:$PATH
    say "Node.js $(node --version) unpacked from $PACK_DIR"
  fi
  if [[ ! -d node_modules/node-llama-cpp && -f $PACK_DIR/project.tar.xz ]]; then
    tar -xJf "$PACK_DIR/project.tar.xz"
    say "packages and the compiled project unpacked from $PACK_DIR"
  fi
  command -v node >/dev/null || fail "no node here, and no $PACK_DIR/node.tar.xz (bench/gpu-check.sh --pack, then carry it)"
  [[ -d node_modules/node-llama-cpp ]] || fail "no node_modules here: npm ci, or bench/gpu-check.sh --pack and carry $PACK_DIR"
  [[ -f dist/forge/forge-model.js ]] || npx tsc -p . || fail "the project is not compiled and cannot be (npx tsc -p .)"
}

main() {
  local dry_run=0 skip_build=0 build_only=0 deadline_s=570
  while (($#)); do
    case $1 in
      --pack) pack; return ;;
      --dry-run) dry_run=1 ;;
      --skip-build) skip_build=1 ;;
      --build-only) build_only=1 ;;
      --deadline-s) deadline_s=$2; shift ;;
      *) fail "unknown argument $1 (see the top of bench/gpu-check.sh)" ;;
    esac
    shift
  done
  local started=$SECONDS log=/dev/null
  if [[ -n ${OUT:-} ]]; then mkdir -p "$OUT" && log=$OUT/gpu-check.log; fi
  exec > >(tee -a "$log") 2>&1
  unpack_if_needed

  local arch=""
  if ((dry_run == 0)) && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')
    say "GPU compute capability ${arch}; $(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' || true); nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo 'not found')"
  else
    say "DRY RUN on the CPU: $( ((dry_run)) && echo '--dry-run given' || echo 'no NVIDIA GPU here (nvidia-smi finds none)'); nothing is built and no GPU figure is measured"
  fi

  if [[ -n $arch ]]; then
    if ((skip_build)); then
      say "--skip-build: using the CUDA build already in node_modules (CUDA architectures ${NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES:=$arch})"
      export NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES
    else
      local build_s=$((build_only ? deadline_s - 30 : deadline_s - 150))
      BUILD_CUDA_VERIFY=no timeout "$build_s" deploy/build-cuda.sh "$arch" ||
        fail "deploy/build-cuda.sh $arch failed or ran past ${build_s} s (above)"
      export NODE_LLAMA_CPP_CMAKE_OPTION_CMAKE_CUDA_ARCHITECTURES=$arch
      if ((build_only)); then
        deploy/build-cuda.sh verify models/stories260K.gguf
        say "built in $((SECONDS - started)) s; measure with bench/gpu-check.sh --skip-build"
        return
      fi
    fi
    local left=$((deadline_s - (SECONDS - started) - 10))
    ((left > 30)) || fail "no time left for the measurements after the build"
    node bench/gpu-check.mjs --gpu cuda --deadline-s "$left" ${OUT:+--out "$OUT"}
  else
    node bench/gpu-check.mjs --gpu cpu --deadline-s $((deadline_s - (SECONDS - started))) ${OUT:+--out "$OUT"}
  fi
  say "done in $((SECONDS - started)) s"
}

main "$@"
