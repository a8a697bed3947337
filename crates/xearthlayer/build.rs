//! intel_tex_2's prebuilt ISPC kernels include C++ objects that need the C++
//! runtime's exception personality; link libstdc++ for them.
fn main() {
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
