#!/bin/sh
# Keeps the fuzz targets from rotting on the stable toolchain: builds the fuzz crate
# (targets as plain binaries, the seed generator) and replays every committed seed
# through each target's body. Needs no nightly and no cargo-fuzz.
#
#   fuzz/check.sh            (from anywhere)
set -eu
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="$PWD/target"
cargo build --locked --bins --examples
cargo test --locked
