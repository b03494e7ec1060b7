#!/usr/bin/env python3
"""Anchor: PyTorch training throughput of the CIFAR ResNets (He et al. 2016) and
the Wide ResNet WRN-28-10 (Zagoruyko & Komodakis 2016) used by EraseReLU.

The project's copy of ../shared/bench/torch_resnet_bench.py (read-only there),
extended with the modes a GPU user would pick instead of plain fp32:
  --amp bf16        torch.autocast(bfloat16) around forward and loss (weights and
                    the SGD update stay fp32, as in PyTorch's AMP recipe)
  --channels-last   model and input in torch.channels_last (NHWC) memory format
  --tf32 MODE       default: PyTorch's defaults (TF32 for cuDNN convolutions,
                    not for matmul); on: TF32 for both; off: exact fp32 (both off)
  --cudnn-benchmark cuDNN autotuning (what a user tuning for speed sets)
Without these flags it measures what the shared script measures, and its output
line is the shared script's with the mode fields appended.

Basic blocks conv-BN-ReLU-conv-BN + shortcut (+ ReLU unless --erase), 16/32/64 channels;
WRN-d-k: pre-activation blocks BN-ReLU-conv-BN-ReLU-conv + shortcut (1x1 conv of the
pre-activated input where the shape changes), widths 16k/32k/64k, BN-ReLU head,
as arch/residual.go builds it (36,479,194 parameters for WRN-28-10).
Batch 128, SGD momentum 0.9 nesterov, wd 1e-4, random 3x32x32 input.
usage: torch_resnet_bench.py [arch ...] [--erase] [--steps N] [--warmup N] [--device cpu|cuda]
       [--threads N] [--amp none|bf16] [--channels-last] [--tf32 default|on|off] [--cudnn-benchmark]
arch: a ResNet depth (20, 56, 110, 1202), resnet-<d>, or wrn-<d>-<k> (wrn-28-10).
Prints one line per architecture: img/s for a training step, eval img/s, peak memory.
"""
import argparse, contextlib, resource, time, torch, torch.nn as nn, torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride, erase):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.erase = erase
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        o = F.relu(self.b1(self.c1(x)))
        o = self.b2(self.c2(o))
        o = o + (x if self.short is None else self.short(x))
        return o if self.erase else F.relu(o)


class ResNet(nn.Module):
    def __init__(self, depth, classes=10, erase=False):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(Block(cin, cout, stride if i == 0 else 1, erase))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.body(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the input or, where the shape
    changes, a 1x1 convolution of the pre-activated input (no trailing ReLU:
    EraseReLU's --erase does not apply to pre-activation blocks)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.b1 = nn.BatchNorm2d(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        pre = F.relu(self.b1(x))
        o = self.c2(F.relu(self.b2(self.c1(pre))))
        return o + (x if self.short is None else self.short(pre))


class WideResNet(nn.Module):
    def __init__(self, depth, k, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        layers, cin = [], 16
        for cout, stride in ((16 * k, 1), (32 * k, 2), (64 * k, 2)):
            for i in range(n):
                layers.append(PreActBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.body(self.stem(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build(name, erase):
    """The model and its printed name for an architecture argument."""
    if name.isdigit():
        name = "resnet-" + name
    parts = name.split("-")
    try:
        if parts[0] == "resnet" and len(parts) == 2:
            d = int(parts[1])
            if (d - 2) % 6 == 0 and d >= 8:
                return ResNet(d, erase=erase), f"resnet{d}"
        if parts[0] == "wrn" and len(parts) == 3:
            d, k = int(parts[1]), int(parts[2])
            if (d - 4) % 6 == 0 and d >= 10 and k >= 1:
                if erase:
                    raise SystemExit(f"{name}: --erase applies to the after-activation ResNets only")
                return WideResNet(d, k), f"wrn{d}-{k}"
    except ValueError:
        pass
    raise SystemExit(f"architecture {name!r}: want a depth 6n+2, resnet-<6n+2> or wrn-<6n+4>-<k>")


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def set_tf32(mode, dev):
    """Applies --tf32 and returns what the GEMMs and convolutions ran in."""
    if mode == "on":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif mode == "off":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if dev != "cuda":
        return "cpu-fp32"
    conv = "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
    mm = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"
    return f"conv:{conv},matmul:{mm}"


def bench(arch, steps, warmup, erase, dev, bs, amp, channels_last, math):
    torch.manual_seed(0)
    m, label = build(arch, erase)
    m = m.to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = m.to(memory_format=fmt)
    params = sum(p.numel() for p in m.parameters())
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    x = torch.randn(bs, 3, 32, 32, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (bs,), device=dev)
    m.train()

    def autocast():
        if amp == "bf16":
            return torch.autocast(device_type=dev, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        return loss

    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync(dev)
    dt = time.perf_counter() - t0
    m.eval()
    with torch.no_grad(), autocast():
        m(x)
        sync(dev)
        t1 = time.perf_counter()
        for _ in range(5):
            m(x)
        sync(dev)
        di = time.perf_counter() - t1
    if dev == "cuda":
        mem = f"peak_gpu_MiB={torch.cuda.max_memory_allocated() / 2**20:.0f}"
    else:
        mem = f"peak_rss_MiB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
    print(f"{label} dev={dev} erase={erase} params={params} batch={bs} "
          f"train_img_s={steps * bs / dt:.1f} step_ms={dt / steps * 1000:.1f} "
          f"eval_img_s={5 * bs / di:.1f} {mem} amp={amp} channels_last={int(channels_last)} math={math} "
          f"cudnn_benchmark={int(torch.backends.cudnn.benchmark)} loss_last={loss.item():.4f}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("archs", nargs="*", default=["20", "56"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--erase", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--amp", choices=["none", "bf16"], default="none")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--tf32", choices=["default", "on", "off"], default="default")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    math = set_tf32(a.tf32, a.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cuda {torch.version.cuda}", flush=True)
    for arch in a.archs:
        bench(arch, a.steps, a.warmup, a.erase, a.device, a.batch, a.amp, a.channels_last, math)
