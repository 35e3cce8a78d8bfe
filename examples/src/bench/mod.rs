//! Modules of the `bench` binary (included with `#[path]` from
//! src/bin/bench.rs; not part of the library).

pub mod args;
pub mod contender;
pub mod machine;
pub mod oversub;
pub mod profile;
pub mod report;
pub mod run;
pub mod throughput;
