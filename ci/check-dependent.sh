#!/usr/bin/env bash
# Builds and tests the worked student crate (fixtures/student) as a crate
# outside this workspace, depending on poetry-harness by path as any
# student's Rust crate would: it must build with no [patch] section of its
# own. (The vendored turmoil and turmoil-net are dependencies of
# poetry-harness under names of their own, which reach every dependent; a
# [patch] would reach none.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cp -r "$root/fixtures/student/src" "$root/fixtures/student/tests" "$dir/"
cat >"$dir/Cargo.toml" <<TOML
[package]
name = "poetry-student"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
poetry-harness = { path = "$root/harness" }
tokio = { version = "1", features = ["full"] }
bytes = "1"

# A workspace of its own: nothing of poetry-harness's workspace applies.
[workspace]
TOML
# The workspace's lock file, so the dependent gets the versions CI tested;
# the workspace's target directory, so nothing is compiled twice.
cp "$root/Cargo.lock" "$dir/Cargo.lock"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo test --quiet --manifest-path "$dir/Cargo.toml"
