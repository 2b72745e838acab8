#!/usr/bin/env bash
# Runs snapseal's performance comparisons (issue 7) on this machine. Not for CI: it installs
# b3sum, writes several GiB and takes minutes.
#
#   benches/run.sh [DIR]      DIR: where the files go (default: the system temp dir); put it
#                             on the filesystem you care about. Needs ~5 GiB free.
#
# Prints the side-by-side table (`cargo run --release --example bench`), the scaling tables of
# docs/PERFORMANCE.md (`--scaling`), then the divan benches for each target.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-${TMPDIR:-/tmp}}"

# The peer for the hashing rows. --locked: the versions b3sum was released with.
if ! command -v b3sum >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/b3sum" ]; then
    cargo install b3sum --locked
fi

cargo run --release --example bench -- "$dir" || true   # exit 2: a target missed
cargo run --release --example bench -- --scaling "$dir"

export SNAPSEAL_BENCH_DIR="$dir"
cargo bench --bench persist_peers
cargo bench --bench serialise
cargo bench --bench consensus_latency
cargo bench --bench engine_dispatch
cargo bench -p snapseal-persist --bench persist
