//! The `jobsmith` binary. Placeholder until the manager lands; see docs/architecture.md.
fn main() {}
