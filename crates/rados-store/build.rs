//! Build script: does nothing unless the `librados` feature is on.
//!
//! With the feature, it compiles the small C++ bridge in `src/librados/shim.cpp` (librados 16.2
//! lists watchers and snapshots only through its C++ API) with the `cc` crate, which also links
//! the C++ runtime, and links the system librados.
//!
//! Needs, on Debian: `librados-dev` (C header, `librados.so`), `libradospp-dev` (C++
//! headers) and `g++`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "librados")]
    build_shim();
}

#[cfg(feature = "librados")]
fn build_shim() {
    println!("cargo:rerun-if-changed=src/librados/shim.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .warnings(true)
        .extra_warnings(true)
        .file("src/librados/shim.cpp")
        .compile("cephlock_rados_shim");
    println!("cargo:rustc-link-lib=dylib=rados");
}
