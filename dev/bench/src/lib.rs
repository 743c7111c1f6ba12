//! Shared pieces of the benchmark binaries in `src/bin/`: realistic traffic and process measurements.

pub mod process;
pub mod traffic;
