//! The npm peers in `tests/node/`, run with `node` against the modules `tests/run`
//! installs into `$CORRIDOR_NODE` (default `~/.cache/corridor/node`).
