#!/usr/bin/env bash
# N kiln nodes on this machine, talking over TCP on 127.0.0.1 (as the multi-node tests do).
#   examples/distributed/local.sh [N] [PIPELINE] [extra kiln train flags...]
# Needs kiln built with MPI: cargo build --release -p kiln-cli --features mpi
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES="${1:-2}"
PIPELINE="${2:-examples/penguins/pipeline.toml}"
shift $(( $# > 2 ? 2 : $# ))
KILN="${KILN:-target/release/kiln}"
# Open MPI refuses root unless told; containers often run as root.
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
exec mpirun -np "$NODES" --oversubscribe \
  --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
  "$KILN" train "$PIPELINE" --nodes "$NODES" "$@"
