//! Declares `cfg(loom)` so the normal build does not warn about it (`unexpected_cfgs`). The crate
//! takes its lints from the workspace, and a `[lints]` table cannot both inherit and add a
//! `check-cfg`, so the declaration lives here.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
