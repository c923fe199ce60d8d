//! corridor-dns (in progress).
fn main() {}
