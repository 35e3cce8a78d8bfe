//! Compile-time diagnostics of `#[derive(PoolConfig)]` (trybuild): each
//! `tests/ui/*.rs` must fail with exactly the `.stderr` next to it, and each
//! `tests/pass/*.rs` must compile. The snapshots are pinned to the toolchain
//! they were made with (Rust 1.95): compiler notes (E0277 help lists) change
//! between releases. Regenerate them with `TRYBUILD=overwrite` after a
//! compiler upgrade and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
