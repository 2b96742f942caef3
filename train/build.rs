// Binaries and tests of this crate find libtorch without LD_LIBRARY_PATH (see plugin/build.rs),
// and record the commit they were built from for the provenance of exported models.
fn main() {
    let libtorch_lib = std::env::var("DEP_CYCLESR_LIBTORCH_LIB")
        .expect("gst-plugin-cyclesr did not report its libtorch folder");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{libtorch_lib}");
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,/opt/torch/.venv/lib/python3.12/site-packages/torch/lib"
    );

    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=CYCLESR_COMMIT={commit}");
    }
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
}
