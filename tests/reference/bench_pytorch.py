"""PyTorch eager timing of G_l2h, the baseline `train bench` compares tch against.

Loads a cyclesr checkpoint (the network is read from its metadata, the weights into the
PyTorch twin of tests/reference/sr_models.py), then runs the same protocol as the Rust side:
`--warmup` untimed forwards, then `--runs` timed ones on a fixed random input of the given
size, under torch.inference_mode(), with torch.set_num_threads(--threads); each pass's wall
time and process CPU time (time.process_time, all threads) are recorded. As on the Rust
side (see `time_forward` in train/src/bench.rs), the model runs a 4×4 probe forward on the main
thread and the timed passes run on another thread, the way the element runs: that keeps
libgomp's barrier spinning in the same (throttled) regime. Every precision is timed twice:
NCHW (`fp32`, ...), and with the model and input in channels_last (`fp32_channels_last`,
...), PyTorch's faster layout for convolutions on oneDNN and cuDNN. Prints one JSON object on
stdout:

    {"torch": "2.11.0+cu130", "threads": 2, "device": "cpu",
     "forward": {"fp32": {"runs_s": [...], "median_s": ...,
                          "cpu_runs_s": [...], "cpu_median_s": ...},
                 "fp32_channels_last": {...}, ...},
     "rss": {"baseline_bytes": ..., "peak_bytes": ...,       # VmRSS at the start, VmHWM
             "baseline_anon_bytes": ..., "peak_anon_bytes": ...},  # RssAnon (--sample-memory)
     "cuda": null | {"fp32": {"max_allocated_bytes": ..., "max_reserved_bytes": ...}, ...}}

Usage: bench_pytorch.py --model M --width W --height H --threads T --warmup 1 --runs 3
       [--device cpu|cuda] [--precisions fp32,fp16,bf16] [--layouts nchw,channels_last]
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time

import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sr_models import FORMAT, build  # noqa: E402

KINDS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def status_bytes(field):
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in bytes (None where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux ≥ 4.0: '5' to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="fp32")
    ap.add_argument(
        "--layouts",
        default="nchw,channels_last",
        help="memory layouts to time, comma-separated (nchw, channels_last)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--sample-memory",
        action="store_true",
        help="sample RssAnon every millisecond during the passes (peak_anon_bytes)",
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    with safe_open(args.model, framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        sys.exit(f"{args.model}: not a cyclesr SR checkpoint (format {meta.get('format')!r})")
    net = json.loads(meta["network"])
    model = build(net["arch"], net["blocks"], net["features"], net["scale"])
    state = {k: v for k, v in load_file(args.model).items() if not k.endswith("num_batches_tracked")}
    model.load_state_dict(state, strict=True)
    model.eval().to(device)

    gen = torch.Generator().manual_seed(args.seed)
    x32 = torch.rand(1, 3, args.height, args.width, generator=gen).to(device)

    with torch.inference_mode():
        model(torch.zeros(1, 3, 4, 4, device=device))

    rss_reset = reset_peak_rss()
    baseline = status_bytes("VmRSS")
    baseline_anon = status_bytes("RssAnon")
    sampled = {"peak_anon": baseline_anon, "stop": False}

    def sample():
        while not sampled["stop"]:
            anon = status_bytes("RssAnon") or 0
            sampled["peak_anon"] = max(sampled["peak_anon"] or 0, anon)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, name="bench-rss", daemon=True)
    if args.sample_memory:
        sampler.start()
    forward, cuda_mem = {}, {} if cuda else None

    def timed():
        layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
        for precision in args.precisions.split(","):
            for layout in args.layouts.split(","):
                time_one(precision, layouts[layout])

    def time_one(precision, layout):
        name = precision if layout == torch.contiguous_format else precision + "_channels_last"
        kind = KINDS[precision]
        m = model.to(kind).to(memory_format=layout)
        x = x32.to(kind).contiguous(memory_format=layout)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        times, cpu_times = [], []
        with torch.inference_mode():
            for i in range(args.warmup + args.runs):
                c0 = time.process_time()
                t0 = time.perf_counter()
                y = m(x)
                if cuda:
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                dc = time.process_time() - c0
                del y
                if i >= args.warmup:
                    times.append(dt)
                    cpu_times.append(dc)
        forward[name] = {
            "runs_s": times,
            "median_s": statistics.median(times),
            "cpu_runs_s": cpu_times,
            "cpu_median_s": statistics.median(cpu_times),
        }
        if cuda:
            cuda_mem[name] = {
                "max_allocated_bytes": torch.cuda.max_memory_allocated(device),
                "max_reserved_bytes": torch.cuda.max_memory_reserved(device),
            }
        model.to(torch.float32).to(memory_format=torch.contiguous_format)

    worker = threading.Thread(target=timed, name="bench-forward")
    worker.start()
    worker.join()
    peak = status_bytes("VmHWM")
    if args.sample_memory:
        sampled["stop"] = True
        sampler.join()
    if not forward:
        sys.exit("the timed forward passes failed")

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(device),
                "input": [args.width, args.height],
                "forward": forward,
                "rss": {
                    "reset": rss_reset,
                    "baseline_bytes": baseline,
                    "peak_bytes": peak,
                    "baseline_anon_bytes": baseline_anon,
                    "peak_anon_bytes": sampled["peak_anon"] if args.sample_memory else None,
                },
                "cuda": cuda_mem,
            }
        )
    )


if __name__ == "__main__":
    main()
