#!/usr/bin/env python3
"""Same-call ratios of a device check (scripts/gpu-check.sh): this project's
`eraserelu gpu bench` JSON lines (bench.log) against the PyTorch anchor's lines
(torch.log, bench/torch_resnet_bench.py), training img/s, per architecture.

usage: gpu_ratios.py BENCH_LOG TORCH_LOG
Columns: ours fp32 and tf32 (CUDA graph, nothing erased); PyTorch eager with
exact fp32 (--tf32 off), eager with PyTorch's defaults (TF32 cuDNN
convolutions), AMP bf16 + channels-last; the ratios ours/PyTorch; our arena
and PyTorch's allocator peak (eager defaults); then ours in bf16 mixed
precision, its ratio to PyTorch AMP bf16 + channels-last, and its arena;
then ours in fp32 with --direct-conv and its ratio to PyTorch's exact fp32.
'-' where a run is missing.
"""
import json, re, sys


def arch_key(name):
    """resnet-20 / resnet20 -> resnet20; wrn-28-10 / wrn28-10 -> wrn28-10."""
    return re.sub(r"^([a-z]+)-", r"\1", name)


def ours(path):
    runs = {}
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("erase", 0) != 0 or not r.get("cuda_graph", True) or r.get("recompute_bn") or "train_img_s" not in r:
            continue
        # Logs before --precision had "tf32": true|false.
        prec = r.get("precision") or ("tf32" if r.get("tf32") else "fp32")
        if r.get("direct_conv"):
            prec += "_direct"
        runs[(arch_key(r["arch"]), prec)] = r
    return runs


def torch_mode(f):
    if f.get("amp") == "bf16":
        return "amp_bf16_cl" if f.get("channels_last") == "1" else "amp_bf16"
    if f.get("channels_last") == "1":
        return "eager_cl"
    # The shared script's lines have no math field: PyTorch's defaults.
    return {"conv:fp32,matmul:fp32": "eager_fp32", "conv:tf32,matmul:fp32": "eager_default",
            "conv:tf32,matmul:tf32": "eager_tf32"}.get(f.get("math", "conv:tf32,matmul:fp32"), "eager_other")


def torch(path):
    runs = {}
    for line in open(path):
        parts = line.split()
        if len(parts) < 2 or not parts[1].startswith("dev=cuda"):
            continue
        f = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if f.get("erase") != "False" or "train_img_s" not in f:
            continue
        runs[(parts[0], torch_mode(f))] = f
    return runs


def table(o, t):
    archs = sorted({a for a, _ in o} | {a for a, _ in t}, key=lambda a: (a[:3], int(re.findall(r"\d+", a)[0])))
    cols = ["ours_fp32", "ours_tf32", "pt_fp32", "pt_default", "pt_amp_bf16_cl",
            "fp32/pt_fp32", "fp32/pt_default", "tf32/pt_default", "tf32/pt_amp", "arena_MiB", "pt_peak_MiB",
            "ours_bf16", "bf16/pt_amp", "arena_bf16_MiB", "ours_fp32_direct", "direct/pt_fp32"]
    lines = ["%-10s " % "arch" + " ".join("%15s" % c for c in cols)]
    for a in archs:
        v = {
            "ours_fp32": float(o[(a, "fp32")]["train_img_s"]) if (a, "fp32") in o else None,
            "ours_tf32": float(o[(a, "tf32")]["train_img_s"]) if (a, "tf32") in o else None,
            "ours_bf16": float(o[(a, "bf16")]["train_img_s"]) if (a, "bf16") in o else None,
            "ours_fp32_direct": float(o[(a, "fp32_direct")]["train_img_s"]) if (a, "fp32_direct") in o else None,
            "pt_fp32": float(t[(a, "eager_fp32")]["train_img_s"]) if (a, "eager_fp32") in t else None,
            "pt_default": float(t[(a, "eager_default")]["train_img_s"]) if (a, "eager_default") in t else None,
            "pt_amp_bf16_cl": float(t[(a, "amp_bf16_cl")]["train_img_s"]) if (a, "amp_bf16_cl") in t else None,
        }
        for num, den in (("ours_fp32", "pt_fp32"), ("ours_fp32", "pt_default"), ("ours_tf32", "pt_default"), ("ours_tf32", "pt_amp_bf16_cl"),
                         ("ours_bf16", "pt_amp_bf16_cl"), ("ours_fp32_direct", "pt_fp32")):
            name = {"fp32_direct": "direct"}.get(num[5:], num[5:]) + "/" + {"pt_amp_bf16_cl": "pt_amp"}.get(den, den)
            v[name] = v[num] / v[den] if v[num] and v[den] else None
        arena = o.get((a, "fp32"), o.get((a, "tf32"), {})).get("arena_mib")
        v["arena_MiB"] = float(arena) if arena is not None else None
        arena = o.get((a, "bf16"), {}).get("arena_mib")
        v["arena_bf16_MiB"] = float(arena) if arena is not None else None
        peak = t.get((a, "eager_default"), {}).get("peak_gpu_MiB")
        v["pt_peak_MiB"] = float(peak) if peak is not None else None
        cells = []
        for c in cols:
            x = v[c]
            cells.append("%15s" % ("-" if x is None else ("%.2fx" % x if "/" in c else "%.0f" % x)))
        lines.append("%-10s " % a + " ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: gpu_ratios.py BENCH_LOG TORCH_LOG")
    print("train img/s, batch 128, same device call (pt = PyTorch)")
    print(table(ours(sys.argv[1]), torch(sys.argv[2])))
