//! Shared pieces of the benchmark binaries in `src/bin/`: realistic traffic and process measurements, and for
//! `bench-app` a site's history, candidate storage and the dashboard's calls.

pub mod app_queries;
pub mod candidates;
pub mod history;
pub mod process;
pub mod traffic;
