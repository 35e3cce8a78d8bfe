//! Compile-time diagnostics of `#[pool_testkit::test]` (trybuild): each
//! `tests/ui/*.rs` must fail with exactly the `.stderr` next to it. The
//! snapshots are pinned to the toolchain they were made with (Rust 1.95);
//! regenerate them with `TRYBUILD=overwrite` after a compiler upgrade and
//! review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
