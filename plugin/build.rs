// Besides the usual plugin version information, make every artifact of this crate find
// libtorch without LD_LIBRARY_PATH: torch-sys's own rpath does not reach downstream crates.
fn main() {
    gst_plugin_version_helper::info();

    let libtorch_lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not report its libtorch folder (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch_lib}");
    // Where the GPU machines keep libtorch, so binaries built here run there unchanged.
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,/opt/torch/.venv/lib/python3.12/site-packages/torch/lib"
    );
    println!("cargo:rustc-env=CYCLESR_LIBTORCH_LIB={libtorch_lib}");
    println!("cargo:libtorch_lib={libtorch_lib}");

    // The shipped models are embedded when present (see models/README.md).
    for (cfg, file) in [
        ("cyclesr_model_quality", "models/srresnet-16x64.safetensors"),
        ("cyclesr_model_fast", "models/srresnet-6x32.safetensors"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo:rerun-if-changed={file}");
        if std::path::Path::new(file).exists() {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}
