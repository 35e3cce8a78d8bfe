//! The one description of every pool setting, shared by `pool-runtime`
//! (which loads and validates settings at run time) and `pool-macros`
//! (which checks `#[derive(PoolConfig)]` attributes at compile time), so
//! that both read the same names, spellings, grammar and rules.
//!
//! An ordinary library (no proc-macro), in the shape of
//! `serde_derive_internals`: adding a setting is one entry in
//! [`SETTINGS`] plus the code that uses it.
//!
//! Lints: `unsafe_code` is forbidden (nothing here needs it) and
//! `missing_docs` warns, so every public item says why it exists.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod duration;
pub mod suggest;
pub mod table;

pub use check::{Problem, Values, check};
pub use duration::{DURATION_FORMAT, format_duration, is_off, parse_duration};
pub use table::{EnumSpec, Kind, SETTINGS, Setting, find};
