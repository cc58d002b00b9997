"""Wall time and peak memory of one token-mixer layer vs sequence length (d_model 384, batch 1,
float32, 2 threads), next to the machine's float32 matmul rate measured in the same run.

    python benchmarks/mixers.py [--lengths 500 2000 8000 32000] [--rounds 2] [--out benchmarks/out]

Each (mixer, length, mode) runs in a fresh subprocess so that peak memory is that process's
ru_maxrss growth over its resident size before the first call. Forward is timed under no_grad
(inference); forward+backward with gradients. FLOPs are analytic forward counts (see *_flops),
backward counted as twice the forward. The mixers compared at one length are measured in
alternating order `--rounds` times and each keeps its fastest time; the `load` column is the
highest 1-minute load average seen while measuring that row (above ~1 other jobs shared the two
cores and the row's times are not trustworthy). Writes mixers.json, mixers.md and mixers.png to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

D_MODEL, HEADS, THREADS = 384, 6, 2
LIN_K = 256
# mambapy's parallel scan keeps several (T, 768, 16) tensors per layer: beyond 8000 it needs
# > 10 GB, more than this shared machine should give one benchmark
MAMBAPY_MAX_T = 8000


def _machine() -> str:
    from cald_asr.report.machine import describe_machine  # the package, as the mixers below (run from the checkout)

    return describe_machine()


class SDPAAttention(nn.Module):
    """The layer being replaced: q, k, v, o projections around torch's fused SDPA."""

    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.o = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.o(y.transpose(1, 2).reshape(b, t, d))


def build(name):
    from cald_asr.mixers import build_mixer

    if name == "attention":
        return SDPAAttention(D_MODEL, HEADS)
    if name == "linformer":
        return build_mixer("linformer", D_MODEL, num_heads=HEADS, max_len=32000, k=LIN_K)
    if name == "mambapy":
        from mambapy.mamba import MambaBlock, MambaConfig

        return MambaBlock(MambaConfig(d_model=D_MODEL, n_layers=1, d_state=16, expand_factor=2, d_conv=4))
    return build_mixer(name, D_MODEL)


# ---- analytic forward FLOPs (multiply-add = 2) ---------------------------------------------
def attention_flops(T, d=D_MODEL):
    return 8 * T * d * d + 4 * T * T * d  # q,k,v,o projections; QK^T and PV


def mamba2_flops(T, d=D_MODEL, n=128, headdim=64, chunk=None, conv=4):
    from cald_asr.mixers.ops.ssd import DEFAULT_CHUNK

    L = chunk or DEFAULT_CHUNK
    di, h = d, d // headdim  # expand 1, one group
    proj = 2 * T * d * (2 * di + 2 * n + h) + 2 * T * di * d
    conv_f = 2 * T * (di + 2 * n) * conv
    ssd = 2 * T * L * n + 2 * T * L * di + 4 * T * di * n  # C.B^T, M@X, chunk states, state->output
    return proj + conv_f + ssd


def mamba_flops(T, d=D_MODEL, n=16, expand=2, conv=4):
    di, r = expand * d, math.ceil(d / 16)
    proj = 2 * T * d * 2 * di + 2 * T * di * (r + 2 * n) + 2 * T * r * di + 2 * T * di * d
    # recurrence per (t, channel, state): delta*A, exp, decay*h, +input, delta*u*B, C*h, sum
    return proj + 2 * T * di * conv + 7 * T * di * n


def linformer_flops(T, d=D_MODEL, k=LIN_K):
    return 8 * T * d * d + 4 * T * k * d + 4 * T * k * d  # projections; E^T K, F^T V; attention


FLOPS = {
    "attention": attention_flops,
    "bimamba2": lambda T: 2 * mamba2_flops(T),
    "bimamba": lambda T: 2 * mamba_flops(T),
    "linformer": linformer_flops,
    "mamba": mamba_flops,
    "mambapy": mamba_flops,
}


# ---- one measurement, in its own process ---------------------------------------------------
def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(name, T, mode, budget_s):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    m = build(name)
    x = torch.randn(1, T, D_MODEL, requires_grad=(mode == "fwdbwd"))

    def call():
        if mode == "fwd":
            with torch.no_grad():
                m(x)
        else:
            m(x).sum().backward()
            m.zero_grad(set_to_none=True)
            x.grad = None

    base = rss_bytes()
    t0 = time.perf_counter()
    call()  # first call: peak memory, and warm-up
    first = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times = []
    while len(times) < 5 and (not times or sum(times) + first < budget_s):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"time_s": min(times) if times else first, "runs": len(times), "peak_mem_mb": peak / 2**20}


def matmul_rate(n=2048, reps=5):
    torch.set_num_threads(THREADS)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def run_one(name, T, mode, budget_s):
    cmd = [sys.executable, __file__, "--worker", name, str(T), mode, str(budget_s)]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[500, 2000, 8000, 32000])
    ap.add_argument("--mixers", nargs="+", default=["attention", "bimamba2", "bimamba", "linformer"])
    ap.add_argument("--v1-length", type=int, default=1000, help="length for mamba vs mambapy")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of repeats per measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating repeats per length")
    ap.add_argument("--skip-v1", action="store_true", help="leave out mamba vs mambapy")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        name, T, mode, budget = args.worker
        print(json.dumps(worker(name, int(T), mode, float(budget))))
        return

    rate = matmul_rate()
    print(f"float32 matmul rate ({THREADS} threads): {rate / 1e9:.1f} GFLOP/s", flush=True)
    groups = [[(m, T) for m in args.mixers] for T in args.lengths]
    if not args.skip_v1:
        try:
            import mambapy  # noqa: F401

            have_mambapy = True
        except ImportError:
            have_mambapy = False
        v1_lengths = sorted(set([args.v1_length] + [T for T in args.lengths if T <= MAMBAPY_MAX_T]))
        groups += [[("mamba", T)] + ([("mambapy", T)] if have_mambapy else []) for T in v1_lengths]
    rows = []
    for group in groups:
        # the mixers compared at one length are measured in alternating order, `rounds` times,
        # keeping each one's fastest: a burst of load from other jobs then hits both, not one
        got = {job: {"mixer": job[0], "T": job[1], "flops_fwd": FLOPS[job[0]](job[1]), "load": 0.0} for job in group}
        for rnd in range(args.rounds):
            for name, T in group if rnd % 2 == 0 else group[::-1]:
                row = got[(name, T)]
                for mode in ("fwd", "fwdbwd"):
                    row["load"] = max(row["load"], os.getloadavg()[0])
                    r = run_one(name, T, mode, args.budget)
                    old = row.get(mode)
                    if old is None or ("time_s" in r and ("time_s" not in old or r["time_s"] < old["time_s"])):
                        if old is not None and "peak_mem_mb" in old:
                            r["peak_mem_mb"] = old["peak_mem_mb"]  # the first round's peak
                        row[mode] = r
        for row in got.values():
            for mode in ("fwd", "fwdbwd"):
                r = row[mode]
                if "time_s" in r:
                    mult = 1 if mode == "fwd" else 3
                    r["gflops_per_s"] = mult * row["flops_fwd"] / r["time_s"] / 1e9
                    r["frac_matmul"] = mult * row["flops_fwd"] / r["time_s"] / rate
                    r["us_per_frame"] = r["time_s"] / row["T"] * 1e6
            rows.append(row)
            print(_fmt_row(row), flush=True)
    result = {
        "matmul_gflops": rate / 1e9,
        "threads": THREADS,
        "d_model": D_MODEL,
        "torch": torch.__version__,
        "machine": _machine(),
        "rows": rows,
        "summary": summarize(rows),
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "mixers.json"), "w") as f:
        json.dump(result, f, indent=1)
    md = to_markdown(result)
    with open(os.path.join(args.out, "mixers.md"), "w") as f:
        f.write(md)
    plot(rows, os.path.join(args.out, "mixers.png"))
    print(md)


def _fmt_row(row):
    parts = [f"{row['mixer']:>9} T={row['T']:>6} load {row.get('load', 0):4.1f}"]
    for mode in ("fwd", "fwdbwd"):
        r = row[mode]
        if "error" in r:
            parts.append(f"{mode}: ERROR {r['error']}")
        else:
            parts.append(
                f"{mode} {r['time_s'] * 1e3:9.1f} ms {r['peak_mem_mb']:8.0f} MB {100 * r['frac_matmul']:5.1f}%"
            )
    return " | ".join(parts)


def summarize(rows):
    get = {(r["mixer"], r["T"]): r for r in rows}
    out = {}
    for (name, T), r in get.items():
        if name != "bimamba2" or ("attention", T) not in get:
            continue
        a = get[("attention", T)]
        entry = {"flop_ratio_attention_over_bimamba2": a["flops_fwd"] / r["flops_fwd"]}
        for mode in ("fwd", "fwdbwd"):
            if "time_s" in r[mode] and "time_s" in a[mode]:
                entry[f"measured_speedup_{mode}"] = a[mode]["time_s"] / r[mode]["time_s"]
        out[f"T={T}"] = entry
    per_frame = {
        T: r["fwdbwd"]["us_per_frame"] for (n, T), r in get.items() if n == "bimamba2" and "us_per_frame" in r["fwdbwd"]
    }
    lo = [v for T, v in per_frame.items() if T >= 2000]
    if lo:
        out["bimamba2_fwdbwd_per_frame_max_over_min_T>=2000"] = max(lo) / min(lo)
    v1 = [T for (n, T) in get if n == "mambapy"]
    for T in v1:
        ours, ref = get.get(("mamba", T)), get[("mambapy", T)]
        if ours and "time_s" in ours["fwdbwd"] and "time_s" in ref["fwdbwd"]:
            out[f"mamba_vs_mambapy_fwdbwd_speedup_T={T}"] = ref["fwdbwd"]["time_s"] / ours["fwdbwd"]["time_s"]
    return out


def to_markdown(result):
    lines = [
        f"torch {result['torch']}, {result['threads']} threads, d_model {result['d_model']}, batch 1, float32; "
        f"float32 matmul rate {result['matmul_gflops']:.1f} GFLOP/s (same run)."
        + (f" Machine: {result['machine']}." if result.get("machine") else ""),
        "",
        "| mixer | T | fwd ms | fwd peak MB | fwd % matmul | fwd+bwd ms | fwd+bwd peak MB | fwd+bwd % matmul "
        "| fwd+bwd us/frame | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        cells = [r["mixer"], str(r["T"])]
        for mode in ("fwd", "fwdbwd"):
            m = r[mode]
            if "error" in m:
                cells += ["error", "", ""]
            else:
                cells += [f"{m['time_s'] * 1e3:.1f}", f"{m['peak_mem_mb']:.0f}", f"{100 * m['frac_matmul']:.1f}"]
        cells.append(f"{r['fwdbwd'].get('us_per_frame', float('nan')):.1f}")
        cells.append(f"{r.get('load', float('nan')):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| summary | value |", "|---|---:|"]
    for k, v in result["summary"].items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                lines.append(f"| {k} {kk} | {vv:.2f} |")
        else:
            lines.append(f"| {k} | {v:.2f} |")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for i, name in enumerate(dict.fromkeys(r["mixer"] for r in rows)):
        pts = sorted(
            (r["T"], r[mode]["time_s"], mode)
            for r in rows
            if r["mixer"] == name
            for mode in ("fwd", "fwdbwd")
            if "time_s" in r[mode]
        )
        for mode, style in (("fwdbwd", "-o"), ("fwd", "--x")):
            xs = [t for t, _, m in pts if m == mode]
            ys = [s for _, s, m in pts if m == mode]
            if xs:
                ax.loglog(xs, ys, style, color=f"C{i}", label=f"{name} {mode}")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("wall time (s), one layer")
    ax.set_title(f"d_model {D_MODEL}, batch 1, float32, {THREADS} CPU threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
