//! `train`: the companion binary of the cyclesr element.

use clap::{Parser, Subcommand};

use cyclesr_train::{
    bench, bench_step, camera, compare, degrade, eval, export, intervene, trainer,
};

/// Joint CycleGAN + SR training (CycleSR) of the network the `cyclesr` GStreamer element runs,
/// on real degraded footage against unpaired HR stills.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train from an options file (modes: sr-syn, paired, cyclegan, separate, joint,
    /// joint-gan); resumable with --resume.
    Fit(trainer::FitArgs),
    /// A model of one camera from its own footage (a video, frames, a URI or a live source)
    /// with the best measured recipe, within a budget; writes the model and report.html.
    Camera(camera::CameraArgs),
    /// PSNR/SSIM (RGB and Y, NTIRE protocol) of a model and of bicubic on LR/HR pairs.
    Eval(eval::EvalArgs),
    /// Make realistic LR/HR benchmark pairs from HR photos (blur, noise, shift, ×4, JPEG/H.264).
    Degrade(degrade::DegradeArgs),
    /// Write G_l2h of a training state as a model file for the element (with provenance).
    Export(export::ExportArgs),
    /// Speed and memory of G_l2h on one device: raw tch forward, PyTorch eager on the same
    /// weights, the element in a pipeline (RGB, I420, NV12; whole frame and tiled), ratios.
    Bench(bench::BenchArgs),
    /// One joint training iteration (L1 + L2, discriminators, Adam) in tch against the same
    /// iteration in PyTorch eager, with the parameter counts of every network.
    BenchStep(bench_step::BenchStepArgs),
    /// One frame upscaled by bicubic and by G_l2h, the same crop side by side (PNG).
    Compare(compare::CompareArgs),
    /// One change to an explicit stage 1 in a training state (a camera's noise bank scaled, or
    /// its kernel fitted on pairs), for a G_l2h resumed from it to measure that part's worth.
    Intervene(intervene::InterveneArgs),
}

fn main() -> anyhow::Result<()> {
    gstcyclesr::model::device::load_cuda_backend();
    match Cli::parse().command {
        Command::Fit(args) => trainer::fit(&args),
        Command::Camera(args) => camera::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Degrade(args) => degrade::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchStep(args) => bench_step::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Intervene(args) => intervene::run(&args),
    }
}
