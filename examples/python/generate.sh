#!/bin/sh
# Generates the Python gRPC stubs for modelswap's public services (Inference, Admin)
# from the protos in ../../proto, so they never drift from the server.
#
#   ./generate.sh [OUT_DIR]     (default: ./gen)
#
# Needs Debian's protoc and grpc plugin:
#   apt-get install -y protobuf-compiler protobuf-compiler-grpc
# (Not grpc-tools' bundled protoc: it predates proto3 `optional`.)
#
# The stubs import each other as `modelswap.v1.*`, so OUT_DIR is the import root:
# put it on sys.path (modelswap_client.py adds ./gen, or $MODELSWAP_PY_GEN).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
protoc=${PROTOC:-protoc}
plugin=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}
out=${1:-$here/gen}

command -v "$protoc" >/dev/null 2>&1 || { echo "generate.sh: protoc not found; apt-get install -y protobuf-compiler" >&2; exit 127; }
[ -x "$plugin" ] || { echo "generate.sh: $plugin not found; apt-get install -y protobuf-compiler-grpc" >&2; exit 127; }

rm -rf "$out/modelswap"
mkdir -p "$out"
"$protoc" -I "$root/proto" \
  --python_out="$out" \
  --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$plugin" \
  "$root/proto/modelswap/v1/inference.proto" \
  "$root/proto/modelswap/v1/admin.proto"
# Python 3 namespace packages would do, but explicit packages are clearer to readers.
touch "$out/modelswap/__init__.py" "$out/modelswap/v1/__init__.py"
echo "generated $(ls "$out/modelswap/v1" | grep -c '_pb2') modules in $out" >&2
