//! `report.html` of a `train camera` run, with its PNGs beside it: what stage 1 learnt of the
//! footage, the learnt degradation in numbers, the training curves and before/after crops of
//! the footage. Self-contained: images are files next to it, curves inline SVG, no network.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gstcyclesr::model::checkpoint::{write_atomically, SrModel};
use gstcyclesr::model::device::Precision;
use gstcyclesr::model::upscaler::{Tiling, Upscaler};
use gstcyclesr::model::EmbeddedModel;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

use crate::archs::degradation::CameraDegradation;
use crate::camera::{recipe_line, CameraRun};
use crate::compare::{side_by_side, GAP};
use crate::data::{imresize, list_images, load_rgb8, load_rgb8_for_training, save_png, Rgb8};
use crate::edges::{edges, extra_blur, Edge};
use crate::eval::{Stage1, Translator, STAGE1_TOLERANCE};
use crate::metrics::noise_sigma;
use crate::model::SavedState;
use crate::spectrum::{high_band_energy, HIGH_BAND_START};
use crate::trainer::Outcome;

/// What the report is made from.
pub struct ReportInputs<'a> {
    pub run_dir: &'a Path,
    /// The training state the model was exported from.
    pub state: &'a Path,
    /// The exported model.
    pub model: &'a Path,
    pub camera: &'a CameraRun,
    pub outcome: &'a Outcome,
}

/// Rows of the stage-1 grid.
const STAGE1_ROWS: usize = 4;
/// Side of its LR crops, shown enlarged [`ENLARGE`] times by nearest neighbour so that noise
/// and blur are visible pixel by pixel.
const STAGE1_CROP: usize = 64;
const ENLARGE: i64 = 4;
/// Crops each statistic is averaged over: noise σ and high-band energy vary from crop to
/// crop with the content.
const STATISTIC_CROPS: usize = 64;
/// Window of the running mean drawn over each loss curve, as a fraction of its points.
const CURVE_SMOOTHING: f64 = 0.05;
/// Frames of the footage shown before and after, and the crop of each (LR pixels).
const BEFORE_AFTER_FRAMES: usize = 3;
const BEFORE_AFTER_CROP: (usize, usize) = (160, 120);

/// Writes `<run_dir>/report/report.html` and its PNGs; returns the HTML's path.
pub fn write_report(inputs: &ReportInputs) -> Result<PathBuf> {
    let dir = inputs.run_dir.join("report");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let options = SavedState::read(inputs.state)?.options;
    let scale = options.data.scale as usize;
    let footage = footage_files(&inputs.camera.footage)?;
    let hr_files = list_images(&inputs.camera.hr)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut html = String::new();
    header(&mut html, inputs);

    let translator = Translator::load(inputs.state, Device::Cpu)?;
    let samples = Samples::draw(
        &footage,
        &hr_files,
        options.data.jpeg_downscale,
        scale,
        &mut rng,
    )?;
    stage1_section(&mut html, &dir, &translator, &samples, scale)?;
    degradation_section(&mut html, &dir, inputs, &translator, &samples)?;
    curves_section(&mut html, &inputs.run_dir.join("losses.jsonl"))?;
    before_after_section(&mut html, &dir, &footage, inputs.model)?;
    html.push_str("</body>\n</html>\n");
    let path = dir.join("report.html");
    write_atomically(&path, html.as_bytes())?;
    Ok(path)
}

/// Every frame or still the run trained on, source by source.
fn footage_files(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for source in sources {
        files.extend(list_images(source)?);
    }
    anyhow::ensure!(!files.is_empty(), "no footage frames in {sources:?}");
    Ok(files)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(html: &mut String, inputs: &ReportInputs) {
    let camera = inputs.camera;
    let outcome = inputs.outcome;
    let sources: Vec<String> = camera
        .sources
        .iter()
        .map(|s| format!("<code>{}</code>", escape(s)))
        .collect();
    let model = escape(&inputs.model.display().to_string());
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cyclesr: {model}</title>
<style>
body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; background: #fff; }}
img {{ image-rendering: pixelated; max-width: 100%; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
code {{ background: #f3f3f3; padding: 0 0.2em; }}
.caption {{ color: #555; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>A model of your camera</h1>
<p>Model: <code>{model}</code>, trained on {sources} against the HR photos in <code>{hr}</code>.</p>
<p>Recipe: {recipe}. Iterations: {done} of {planned} ({seconds:.3} s each){interrupted}.</p>
<p>Use it: <code>gst-launch-1.0 ... ! cyclesr model-location={model} ! ...</code></p>
"#,
        sources = sources.join(", "),
        hr = escape(&camera.hr.display().to_string()),
        recipe = escape(&recipe_line(camera)),
        done = outcome.iteration,
        planned = outcome.total,
        seconds = outcome.seconds_per_iteration,
        interrupted = if outcome.interrupted {
            ", interrupted: <code>--resume</code> continues"
        } else {
            ""
        },
    );
}

/// Crops of both domains on the CPU: real LR crops `[3, side, side]` of the footage, HR crops
/// and their synthetic LR (bicubic↓).
struct Samples {
    real: Vec<Tensor>,
    hr: Vec<Tensor>,
    synthetic: Vec<Tensor>,
}

impl Samples {
    fn draw(
        footage: &[PathBuf],
        hr_files: &[PathBuf],
        jpeg_downscale: bool,
        scale: usize,
        rng: &mut StdRng,
    ) -> Result<Samples> {
        let count = STATISTIC_CROPS;
        let frames = pick(footage, count.min(footage.len()))
            .into_iter()
            .map(|p| load_rgb8(p))
            .collect::<Result<Vec<_>>>()?;
        let photos = hr_files
            .iter()
            .filter_map(|p| load_rgb8_for_training(p, jpeg_downscale).ok())
            .collect::<Vec<_>>();
        let smallest = |images: &[Rgb8], factor: usize| {
            images
                .iter()
                .map(|i| i.height.min(i.width) / factor)
                .min()
                .unwrap_or(0)
        };
        let side = STAGE1_CROP
            .min(smallest(&frames, 1))
            .min(smallest(&photos, scale));
        anyhow::ensure!(
            side >= 8,
            "frames or photos too small for the report's crops"
        );
        let crop = |image: &Rgb8, side: usize, rng: &mut StdRng| {
            let y = rng.random_range(0..=image.height - side);
            let x = rng.random_range(0..=image.width - side);
            image
                .to_tensor()
                .narrow(1, y as i64, side as i64)
                .narrow(2, x as i64, side as i64)
        };
        let real = (0..count)
            .map(|k| crop(&frames[k % frames.len()], side, rng))
            .collect();
        let hr: Vec<Tensor> = (0..count)
            .map(|k| crop(&photos[k % photos.len()], side * scale, rng))
            .collect();
        let synthetic = hr
            .iter()
            .map(|hr| imresize(hr, 1.0 / scale as f64).clamp(0.0, 1.0))
            .collect();
        Ok(Samples {
            real,
            hr,
            synthetic,
        })
    }
}

/// `count` items of `items`, evenly spaced.
fn pick<T>(items: &[T], count: usize) -> Vec<&T> {
    let n = items.len();
    (0..count.min(n))
        .map(|k| &items[k * n / count.min(n)])
        .collect()
}

fn enlarge(t: &Tensor) -> Tensor {
    t.repeat_interleave_self_int(ENLARGE, 1, None)
        .repeat_interleave_self_int(ENLARGE, 2, None)
}

/// Panels side by side with white gaps (as `train compare` lays them out).
fn row(panels: &[Tensor]) -> Tensor {
    let height = panels[0].size()[1];
    let gap = Tensor::ones([3, height, GAP], (Kind::Float, Device::Cpu));
    let mut parts = Vec::new();
    for (k, panel) in panels.iter().enumerate() {
        if k > 0 {
            parts.push(gap.shallow_clone());
        }
        parts.push(panel.shallow_clone());
    }
    Tensor::cat(&parts, 2)
}

fn stage1_section(
    html: &mut String,
    dir: &Path,
    translator: &Translator,
    samples: &Samples,
    scale: usize,
) -> Result<()> {
    let mut rows = Vec::new();
    for k in 0..STAGE1_ROWS.min(samples.real.len()) {
        let translated = translator.degrade(&samples.hr[k], &samples.synthetic[k], k as u64)?;
        let panels = [&samples.real[k], &samples.synthetic[k], &translated].map(enlarge);
        rows.push(row(&panels));
        rows.push(Tensor::ones(
            [3, GAP, rows[0].size()[2]],
            (Kind::Float, Device::Cpu),
        ));
    }
    rows.pop();
    save_png(&Tensor::cat(&rows, 1), &dir.join("stage1.png"))?;
    let _ = write!(
        html,
        r#"<h2>Your footage, and what stage 1 learnt to make of clean photos</h2>
<p><img src="stage1.png" alt="real LR crops, bicubic-downscaled HR crops and G_s2r of them"></p>
<p class="caption">Left: crops of your footage. Middle: crops of the HR photos downscaled ×{scale} by bicubic (what a
plain SR network trains on). Right: the middle crops through the learnt degradation G_s2r (stage 1) — what this
model trained on. The right column should look like the left one in noise and sharpness (not in content).
Crops shown {ENLARGE}× enlarged.</p>
"#
    );
    Ok(())
}

fn degradation_section(
    html: &mut String,
    dir: &Path,
    inputs: &ReportInputs,
    translator: &Translator,
    samples: &Samples,
) -> Result<()> {
    html.push_str("<h2>The learnt degradation in numbers</h2>\n");
    if let Stage1::Explicit(degradation) = &translator.stage1 {
        html.push_str(
            "<table>\n<tr><th>source</th><th>blur kernel</th><th>σ along its axes (LR px)</th><th>angle</th>\
             <th>noise σ (Y, code values)</th><th>compression</th></tr>\n",
        );
        for camera in &degradation.cameras {
            let (major, minor, angle) = degradation.kernel_spread_lr(camera);
            let name = format!("kernel-{}.png", camera.source);
            save_png(&kernel_image(&camera.kernel)?, &dir.join(&name))?;
            let _ = writeln!(
                html,
                r#"<tr><td><code>{}</code></td><td><img src="{name}" alt="blur kernel"></td><td>{major:.2} × {minor:.2}</td><td>{angle:.0}°</td><td>{}</td><td>{}</td></tr>"#,
                escape(
                    inputs
                        .camera
                        .sources
                        .get(camera.source)
                        .map_or("?", String::as_str)
                ),
                describe_noise_cell(camera),
                camera.describe_compression()
            );
        }
        html.push_str(
            "</table>\n<p class=\"caption\">Fitted before training (stage 1 explicit): the blur of the camera's optics \
             and processing as a kernel fitted to the footage's power spectrum, and a bank of its own noise cut from \
             flat regions; then, unless the footage is marked lossless, its codec: H.264 intra at a quantizer drawn \
             per patch for footage marked codec = \"h264\", otherwise JPEG at a quality drawn per patch: from the \
             qualities read from the footage's own frames where they are JPEG and jpeg_qualities = \"footage\", \
             from a range otherwise.</p>\n",
        );
        let fit = inputs.run_dir.join("degradation-fit.json");
        if let Ok(text) = std::fs::read_to_string(&fit) {
            let _ = writeln!(
                html,
                "<details><summary>The fit's own log (degradation-fit.json)</summary><pre>{}</pre></details>",
                escape(&text)
            );
        }
    } else {
        let _ = writeln!(html, "<p>Stage 1: {}.</p>", escape(&translator.describe()));
    }

    let mut sums = [0.0; 6];
    let [mut edges_real, mut edges_synthetic, mut edges_translated] = [(); 3].map(|_| Vec::new());
    let crops = samples.real.iter().zip(&samples.hr).zip(&samples.synthetic);
    for (k, ((real, hr), synthetic)) in crops.enumerate() {
        let translated = translator.degrade(hr, synthetic, k as u64)?;
        edges_real.extend(edges(real)?);
        edges_synthetic.extend(edges(synthetic)?);
        edges_translated.extend(edges(&translated)?);
        let values = [
            noise_sigma(real),
            noise_sigma(synthetic),
            noise_sigma(&translated),
            high_band_energy(real)?,
            high_band_energy(synthetic)?,
            high_band_energy(&translated)?,
        ];
        for (sum, v) in sums.iter_mut().zip(values) {
            *sum += v;
        }
    }
    let n = samples.real.len() as f64;
    let [noise_real, noise_syn, noise_tr, high_real, high_syn, high_tr] = sums.map(|s| s / n);
    let edge_blur = |blurred: &[Edge]| {
        extra_blur(blurred, &edges_synthetic)
            .map_or_else(|_| "too few step edges".to_string(), |b| b.to_string())
    };
    let verdict = |ratio: f64| {
        if (ratio - 1.0).abs() <= STAGE1_TOLERANCE {
            "matched"
        } else {
            "not matched"
        }
    };
    let _ = write!(
        html,
        r#"<table>
<tr><th>mean over {n} crops</th><th>your footage</th><th>bicubic↓HR</th><th>G_s2r(bicubic↓HR)</th><th>G_s2r / footage</th></tr>
<tr><td>noise σ (Y, code values)</td><td>{noise_real:.2}</td><td>{noise_syn:.2}</td><td>{noise_tr:.2}</td><td>{:.2} ({})</td></tr>
<tr><td>high-band energy (Y, code values², f ≥ {HIGH_BAND_START} cycle/px)</td><td>{high_real:.1}</td><td>{high_syn:.1}</td><td>{high_tr:.1}</td><td>{:.2} ({})</td></tr>
<tr><td>extra blur over bicubic↓HR, from step edges (LR px, along × across its angle)</td><td>{}</td><td></td><td>{}</td><td></td></tr>
</table>
<p class="caption">Measured as <code>train eval --translator</code> does, but on unpaired crops: the footage and the photos
show different content, so these are a guide, not a measurement (on a benchmark with pairs the project counts a ratio within
±{tolerance:.0}% as learnt). Noise σ by Immerkær's method; high band from the power spectrum of 32×32 tiles. The extra blur
compares the widths of the sharpest step edges direction by direction, which the scenes move far less than the spectrum: the
right column should read like the left one, including its angle.</p>
"#,
        noise_tr / noise_real,
        verdict(noise_tr / noise_real),
        high_tr / high_real,
        verdict(high_tr / high_real),
        edge_blur(&edges_real),
        edge_blur(&edges_translated),
        tolerance = STAGE1_TOLERANCE * 100.0,
    );
    Ok(())
}

/// A `[k, k]` kernel as a grey image (white = its largest weight), each weight a 16-pixel
/// square.
fn kernel_image(kernel: &Tensor) -> Result<Tensor> {
    let k = kernel.to_device(Device::Cpu).to_kind(Kind::Float);
    let max = k.max().double_value(&[]).max(f64::MIN_POSITIVE);
    let grey = (k / max).unsqueeze(0).repeat([3, 1, 1]);
    Ok(grey
        .repeat_interleave_self_int(16, 1, None)
        .repeat_interleave_self_int(16, 2, None))
}

fn curves_section(html: &mut String, losses: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(losses).with_context(|| format!("reading {}", losses.display()))?;
    let mut series: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("a line of {}", losses.display()))?;
        let Some(iteration) = value["iteration"].as_f64() else {
            continue;
        };
        for (key, v) in value.as_object().into_iter().flatten() {
            if ["iteration", "phase", "seconds", "lr_factor"].contains(&key.as_str()) {
                continue;
            }
            if let Some(v) = v.as_f64().filter(|v| v.is_finite() && *v > 0.0) {
                series.entry(key.clone()).or_default().push((iteration, v));
            }
        }
    }
    html.push_str("<h2>Training curves</h2>\n");
    html.push_str(&svg_curves(&series));
    html.push_str(
        "<p class=\"caption\">Every loss term logged in <code>losses.jsonl</code>, on a log scale, faint, with \
         their running mean (sr_mse: the mean squared error of G_l2h on the pseudo pairs).</p>\n",
    );
    Ok(())
}

/// Line plot of each series (log10 y), inline SVG with its axes' ranges and a legend.
fn svg_curves(series: &std::collections::BTreeMap<String, Vec<(f64, f64)>>) -> String {
    const COLOURS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let (width, height, left, bottom, top, right) = (760.0, 320.0, 70.0, 40.0, 20.0, 160.0);
    let points = series.values().flatten();
    let (x0, x1) = points
        .clone()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| {
            (a.min(*x), b.max(*x))
        });
    let (y0, y1) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, y)| {
        (a.min(y.log10()), b.max(y.log10()))
    });
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>
"##
    );
    if !x0.is_finite() {
        svg.push_str(r#"<text x="20" y="40">no losses logged yet</text></svg>"#);
        return svg;
    }
    let (x1, y1) = (x1.max(x0 + 1.0), y1.max(y0 + 1e-3));
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let px = |x: f64| left + (x - x0) / (x1 - x0) * plot_w;
    let py = |y: f64| top + (1.0 - (y.log10() - y0) / (y1 - y0)) * plot_h;
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>
<text x="{left}" y="{ty}" font-size="12">{x0}</text>
<text x="{xr}" y="{ty}" font-size="12" text-anchor="end">{x1} iterations</text>
<text x="{lx}" y="{yt}" font-size="12" text-anchor="end">{top_value:.3e}</text>
<text x="{lx}" y="{yb}" font-size="12" text-anchor="end">{bottom_value:.3e}</text>
"##,
        ty = height - bottom + 16.0,
        xr = left + plot_w,
        lx = left - 4.0,
        yt = top + 10.0,
        yb = top + plot_h,
        top_value = 10f64.powf(y1),
        bottom_value = 10f64.powf(y0),
    );
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let line = |points: &[(f64, f64)]| -> String {
            points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Each batch's loss is noisy: the raw values faint, their running mean over
        // CURVE_SMOOTHING of the run drawn over them.
        let window = ((values.len() as f64 * CURVE_SMOOTHING) as usize).max(1);
        let smooth: Vec<(f64, f64)> = (0..values.len())
            .map(|i| {
                let from = i.saturating_sub(window - 1);
                let part = &values[from..=i];
                let mean = part.iter().map(|(_, y)| y).sum::<f64>() / part.len() as f64;
                (values[i].0, mean)
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-opacity="0.25" stroke-width="1" points="{}"/>
<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>
<text x="{}" y="{}" font-size="12" fill="{colour}">{}</text>"#,
            line(values),
            line(&smooth),
            left + plot_w + 10.0,
            top + 14.0 + 16.0 * k as f64,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn before_after_section(
    html: &mut String,
    dir: &Path,
    footage: &[PathBuf],
    model: &Path,
) -> Result<()> {
    let mut names = vec!["bicubic".to_string()];
    let mut upscalers = Vec::new();
    let whole = Tiling::default();
    // What the element runs without model-location.
    if let Some(bytes) = EmbeddedModel::default().bytes() {
        let default = SrModel::from_bytes(bytes, Device::Cpu).context("embedded default model")?;
        upscalers.push(Upscaler::new(default, Precision::Fp32, whole)?);
        names.push("the embedded default model".to_string());
    }
    let new = SrModel::load(model, Device::Cpu)?;
    upscalers.push(Upscaler::new(new, Precision::Fp32, whole)?);
    names.push("your new model".to_string());
    let _ = writeln!(
        html,
        "<h2>Before and after, on your footage</h2>\n<p class=\"caption\">Left to right: {}; ×{} on a crop of \
         each frame.</p>",
        names.join(" | "),
        upscalers[0].scale()
    );
    for (k, path) in pick(footage, BEFORE_AFTER_FRAMES).into_iter().enumerate() {
        let frame = load_rgb8(path)?.to_tensor();
        let (h, w) = (frame.size()[1], frame.size()[2]);
        let (cw, ch) = (
            (BEFORE_AFTER_CROP.0 as i64).min(w),
            (BEFORE_AFTER_CROP.1 as i64).min(h),
        );
        let crop = [cw, ch, (w - cw) / 2, (h - ch) / 2];
        let strip = side_by_side(&frame, crop, &upscalers, false, None)
            .with_context(|| format!("upscaling {}", path.display()))?;
        let name = format!("after-{k}.png");
        save_png(&strip, &dir.join(&name))?;
        let _ = writeln!(
            html,
            r#"<p><img src="{name}" alt="bicubic, default model and new model"><br><span class="caption">{}</span></p>"#,
            escape(&path.display().to_string())
        );
    }
    Ok(())
}

/// The noise σ column of one camera: its level, how it is drawn per image, and how it follows
/// brightness.
fn describe_noise_cell(camera: &CameraDegradation) -> String {
    let level = match camera.noise_sigma_percentiles() {
        Some([lo, mid, hi]) => {
            format!("{mid:.2}, drawn per image ({lo:.2}–{hi:.2} from 10th to 90th percentile)")
        }
        None => format!("{:.2}", camera.noise_sigma()),
    };
    match camera.brightness_levels() {
        Some(levels) => {
            let (lo, hi) = levels.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &l| {
                (lo.min(l), hi.max(l))
            });
            format!("{level}; ×{lo:.2}–×{hi:.2} with brightness, as the footage's")
        }
        None => level,
    }
}
