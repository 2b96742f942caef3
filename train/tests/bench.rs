//! `train bench` on a tiny network: every measurement runs and lands in the JSON report with
//! a positive figure. No timing assertions (the machine may be shared).

mod common;

use clap::Parser;
use common::temp_dir;
use cyclesr_train::bench::{self, BenchArgs};
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn positive(v: &Value, what: &str) {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what} missing: {v}"));
    assert!(x > 0.0 && x.is_finite(), "{what} = {x}");
}

#[test]
fn tiny_bench_reports_every_figure() {
    let dir = temp_dir("bench");
    let json = dir.join("bench.json");
    let cli = Cli::parse_from([
        "bench",
        "--blocks",
        "2",
        "--features",
        "8",
        "--size",
        "64x36",
        "--frames",
        "3",
        "--runs",
        "3",
        "--device",
        "cpu",
        "--tile-size",
        "32",
        "--tile-overlap",
        "8",
        "--json",
        json.to_str().unwrap(),
    ]);
    bench::run(&cli.bench).unwrap();

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    positive(&report["machine"]["cores"], "cores");
    positive(&report["machine"]["torch_threads"], "torch threads");
    assert_eq!(report["network"]["blocks"], 2);
    let sizes = report["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 1);
    let s = &sizes[0];
    assert_eq!(s["output"], serde_json::json!([256, 144]));

    // 1. tch forward, 2. PyTorch eager.
    positive(&s["forward_tch"]["fp32"]["median_s"], "tch forward");
    assert_eq!(
        s["forward_tch"]["fp32"]["runs_s"].as_array().unwrap().len(),
        3
    );
    positive(
        &s["forward_pytorch"]["forward"]["fp32"]["median_s"],
        "PyTorch forward",
    );
    positive(&s["forward_tch"]["fp32"]["cpu_median_s"], "tch forward CPU");
    positive(
        &s["forward_pytorch"]["forward"]["fp32"]["cpu_median_s"],
        "PyTorch forward CPU",
    );
    assert_eq!(
        s["forward_pytorch"]["threads"],
        report["machine"]["torch_threads"]
    );
    positive(
        &s["forward_pytorch"]["forward"]["fp32_channels_last"]["median_s"],
        "PyTorch channels_last forward",
    );
    // Against PyTorch at its best: its faster layout.
    let best = s["forward_pytorch"]["forward"]["fp32"]["median_s"]
        .as_f64()
        .unwrap()
        .min(
            s["forward_pytorch"]["forward"]["fp32_channels_last"]["median_s"]
                .as_f64()
                .unwrap(),
        );
    let ratio = s["ratios"]["tch_time_over_pytorch_best_time"]
        .as_f64()
        .unwrap();
    let tch = s["forward_tch"]["fp32"]["median_s"].as_f64().unwrap();
    assert!(
        (ratio - tch / best).abs() < 1e-9,
        "{ratio} against {tch} / {best}"
    );
    positive(
        &s["ratios"]["tch_cpu_over_pytorch_cpu"],
        "tch / PyTorch CPU time",
    );

    // 3. The element: RGB, I420, NV12 whole-frame, then RGB tiled.
    let element = s["element"].as_array().unwrap();
    let runs: Vec<(&str, u64)> = element
        .iter()
        .map(|e| {
            (
                e["format"].as_str().unwrap(),
                e["tile_size"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(runs, [("RGB", 0), ("I420", 0), ("NV12", 0), ("RGB", 32)]);
    for e in element {
        assert_eq!(e["frames"], 3);
        positive(&e["fps"], "element fps");
        positive(&e["frame_median_s"], "element frame time");
        positive(&e["fps_over_forward_fps"], "element / forward");
        positive(&e["cpu_per_frame_s"], "element CPU time per frame");
        positive(
            &e["forward_cpu_over_element_cpu"],
            "forward / element CPU time",
        );
    }

    // 4. Peak RSS of a forward (tch, PyTorch) and of whole-frame and tiled element runs.
    let memory = &s["memory"];
    for (what, figures) in [
        ("tch forward", &memory["forward_tch_fp32"]),
        ("whole-frame element", &memory["element_whole_frame"]),
        ("tiled element", &memory["element_tiled"]),
    ] {
        positive(&figures["peak_rss_bytes"], what);
        positive(&figures["baseline_rss_bytes"], what);
        positive(&figures["peak_over_baseline_bytes"], what);
        positive(&figures["peak_anon_bytes"], what);
        // May be 0 when a tiny run falls between two samples.
        assert!(figures["anon_over_baseline_bytes"].is_u64(), "{what}");
    }
    assert_eq!(memory["element_whole_frame"]["format"], "RGB");
    assert_eq!(memory["element_tiled"]["tile_size"], 32);
    positive(
        &memory["forward_pytorch_fp32"]["peak_bytes"],
        "PyTorch peak RSS",
    );
    positive(&memory["tiled_over_whole"], "tiled / whole");
    positive(
        &memory["forward_pytorch_fp32"]["peak_anon_bytes"],
        "PyTorch peak anonymous memory",
    );

    let _ = std::fs::remove_dir_all(&dir);
}
