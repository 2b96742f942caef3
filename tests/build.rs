// The tests of this crate find libtorch without LD_LIBRARY_PATH (see plugin/build.rs).
fn main() {
    let libtorch_lib = std::env::var("DEP_CYCLESR_LIBTORCH_LIB")
        .expect("gst-plugin-cyclesr did not report its libtorch folder");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch_lib}");
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,/opt/torch/.venv/lib/python3.12/site-packages/torch/lib"
    );
}
