//! End-to-end tests, in one test binary so DataFusion is linked once: SQL functions, ingest
//! (from Rust, SQL and the command line) and the `crossdiff` binary.

mod common;

mod cli;
mod examples;
mod experiment;
mod fuzz;
mod ingest;
mod irt;
mod leaderboards;
mod lm;
mod reliability;
mod slt;
mod sql_functions;
