"""The measuring stages of benchmarks/gpu_check.py, one function per stage.

Each stage takes a Ctx (device, dry-run flag, a ``save`` callback) and fills a result dict; it
calls ``ctx.save()`` after every row so that a stage killed by its timeout still leaves what it
measured. In a dry run the device is the CPU and every size is tiny: the numbers mean nothing,
the point is that every code path runs. Timing: wall clock around a device synchronize, median
of repeats, methods interleaved (round-robin) so that drift hits them alike.
"""
from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# The targets, at B=1024, C=21841, K=100 (evaluated only on a real GPU run).
TARGET_ROW = (1024, 21841, 100)
TARGETS = {"speedup_vs_dense": 4.0, "speedup_vs_compiled_dense": 1.5, "pct_copy_bandwidth": 70.0,
           "extra_memory_over_gradient": 1.02, "stored_kd_overhead_pct": 3.0}


@dataclass
class Ctx:
    device: str
    dry_run: bool
    result: dict = field(default_factory=dict)
    save: Callable[[], None] = lambda: None
    compile_in_dry_run: bool = False
    teacher: str = "vit_large_patch16_224"

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()


def _median_ms(ts):
    return statistics.median(ts) * 1e3


def make_inputs(b, c, k, dtype, device, seed=0):
    """Like bench_loss.make_inputs (logits randn*3, distinct top-k, probs summing to 0.9), but
    drawn on the device: a CPU argsort of 1024 x 21841 per row would eat the time budget."""
    g = torch.Generator(device=device).manual_seed(seed)
    logits = (torch.randn(b, c, generator=g, device=device) * 3).to(dtype).requires_grad_()
    idx = torch.rand(b, c, generator=g, device=device).topk(k, 1).indices
    probs = torch.softmax(torch.randn(b, k, generator=g, device=device) * 2, 1) * 0.9
    return logits, idx, probs


def _timed(ctx, fn, repeats):
    ts = []
    for _ in range(repeats):
        ctx.sync()
        t0 = time.perf_counter()
        fn()
        ctx.sync()
        ts.append(time.perf_counter() - t0)
    return ts


# ------------------------------------------------------------------------------------ loss
def stage_loss(ctx: Ctx):
    """Sparse CE fwd+bwd vs dense vs torch.compile(dense): time, peak extra memory, % of the
    measured copy bandwidth for the bytes the op must move."""
    from bench_loss import copy_bandwidth_gbs, ours_gif, table_bw, warmed_step

    from tinyvit.loss import dense_soft_cross_entropy, sparse_soft_cross_entropy

    r = ctx.result
    if ctx.dry_run:
        grid, repeats, warmup = [(8, 50, 5), (8, 300, 10)], 2, 1
    else:
        grid = [(b, c, k) for b in (256, 1024) for c in (1000, 21841) for k in (10, 100)]
        repeats, warmup = 10, 2
    methods = {"dense": dense_soft_cross_entropy, "ours": sparse_soft_cross_entropy, "ours_gif": ours_gif}
    use_compile = not ctx.dry_run or ctx.compile_in_dry_run
    if use_compile:
        methods["compiled_dense"] = torch.compile(dense_soft_cross_entropy, dynamic=True)
    else:
        r["skipped"] = ["compiled_dense: torch.compile is not run in a dry run (minutes of CPU compile "
                        "time); --dry-run-compile includes it"]
    if ctx.device == "cuda":
        bw = copy_bandwidth_gbs("cuda")
        r["bandwidth"] = {"copy_gbs": bw, "copy_method": "best of 5 device-to-device copies of 256 MiB, "
                          "GB/s = 2 x bytes / time", "table_gbs": table_bw(torch.cuda.get_device_name(0))}
    else:
        bw = None
    r.update(grid=grid, repeats=repeats, warmup=warmup, rows=[],
             bytes_model="logits read once + gradient written once + int64 indices + fp32 probs")
    for dname, dtype in DTYPES.items():
        for b, c, k in grid:
            logits, idx, probs = make_inputs(b, c, k, dtype, ctx.device)
            row = {"dtype": dname, "B": b, "C": c, "K": k, "grad_bytes": b * c * logits.element_size(),
                   "methods": {}}
            steps = {}
            for name, fn in methods.items():
                e = row["methods"][name] = {}
                try:
                    # warmup_s: compiled_dense's includes compiling
                    step, e["warmup_s"], e["peak_extra_bytes"] = warmed_step(fn, logits, idx, probs, warmup,
                                                                             ctx.device)
                    e["extra_over_grad"] = e["peak_extra_bytes"] / row["grad_bytes"]
                    steps[name] = step
                except Exception as exc:  # recorded, the other methods still run
                    e["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            times = {n: [] for n in steps}
            for _ in range(repeats):
                for n, step in steps.items():
                    times[n] += _timed(ctx, step, 1)
            nbytes = 2 * b * c * logits.element_size() + b * k * (idx.element_size() + probs.element_size())
            for n, ts in times.items():
                e = row["methods"][n]
                e["median_ms"] = _median_ms(ts)
                if bw:
                    e["achieved_gbs"] = nbytes / (e["median_ms"] / 1e3) / 1e9
                    e["pct_copy_bandwidth"] = 100 * e["achieved_gbs"] / bw
            ms = {n: e.get("median_ms") for n, e in row["methods"].items()}
            for n in ("ours", "ours_gif"):
                if ms.get(n):
                    if ms.get("dense"):
                        row["methods"][n]["speedup_vs_dense"] = ms["dense"] / ms[n]
                    if ms.get("compiled_dense"):
                        row["methods"][n]["speedup_vs_compiled_dense"] = ms["compiled_dense"] / ms[n]
            row["roofline_bytes"] = nbytes
            r["rows"].append(row)
            ctx.save()
    r["targets"] = _loss_targets(ctx, r["rows"])


def _loss_targets(ctx, rows):
    if ctx.dry_run:
        return {"evaluated": False, "reason": "dry run: CPU at tiny sizes"}
    out = {"row": dict(zip("BCK", TARGET_ROW)), "by_dtype": {}}
    for row in rows:
        if (row["B"], row["C"], row["K"]) != TARGET_ROW:
            continue
        ours = row["methods"]["ours"]
        got = {key: ours.get(key) for key in ("speedup_vs_dense", "speedup_vs_compiled_dense",
                                              "pct_copy_bandwidth", "extra_over_grad")}
        got["pct_copy_bandwidth_gif"] = row["methods"]["ours_gif"].get("pct_copy_bandwidth")
        passed = {key: (got[key] is not None and got[key] >= TARGETS[key]) for key in
                  ("speedup_vs_dense", "speedup_vs_compiled_dense", "pct_copy_bandwidth")}
        # the only extra memory is the gradient (plus B-sized loss/lse/u and allocator rounding)
        passed["extra_memory_is_the_gradient"] = (got["extra_over_grad"] is not None
                                                  and got["extra_over_grad"] <= TARGETS["extra_memory_over_gradient"])
        out["by_dtype"][row["dtype"]] = {"measured": got, "passed": passed}
    out["targets"] = TARGETS
    return out


# ------------------------------------------------------------------------------- agreement
def stage_agreement(ctx: Ctx):
    """CUDA vs CPU: the loss and its gradient (tolerances: different reduction orders) and the
    device ops (bit-exact by design: tinyvit/augment/device.py)."""
    import tinyvit
    import tinyvit.augment.plan

    from tinyvit.augment.config import AugConfig
    from tinyvit.loss import dense_soft_cross_entropy, sparse_soft_cross_entropy

    r = ctx.result
    if ctx.dry_run:
        r["note"] = "dry run: the 'device' side is the CPU too, so this exercises the code, not CUDA"
    b, c, k = (4, 50, 5) if ctx.dry_run else (64, 21841, 100)
    # Every dtype against the fp64 dense loss of the same (rounded) inputs, and CUDA against the
    # CPU op. The loss accumulates in fp32 (fp64 for fp64); a 16-bit gradient is rounded once,
    # |grad| <= 1, so its error is bounded by the dtype's half ulp at 1.
    loss_tol = {"fp64": 1e-10, "fp32": 1e-4, "bf16": 1e-4, "fp16": 1e-4}
    grad_tol = {"fp64": 1e-12, "fp32": 1e-6, "bf16": 2 ** -8, "fp16": 2 ** -10}
    r["loss"] = []
    for dname, dtype in {"fp64": torch.float64, **DTYPES}.items():
        logits, idx, probs = make_inputs(b, c, k, dtype, "cpu", seed=1)
        outs = {}
        for dev in ("cpu", ctx.device):
            z = logits.detach().to(dev).requires_grad_()
            loss = sparse_soft_cross_entropy(z, idx.to(dev), probs.to(dev), reduction="none")
            loss.sum().backward()
            outs[dev] = (loss.detach().double().cpu(), z.grad.double().cpu())
        z64 = logits.detach().double().requires_grad_()
        ref = dense_soft_cross_entropy(z64, idx, probs.double(), reduction="none")
        ref.sum().backward()
        a, g = outs[ctx.device]
        row = {"dtype": dname, "B": b, "C": c, "K": k,
               "loss_max_rel_diff_vs_cpu": float(((a - outs["cpu"][0]).abs() / outs["cpu"][0].abs().clamp_min(1e-12)).max()),
               "grad_max_abs_diff_vs_cpu": float((g - outs["cpu"][1]).abs().max()),
               "loss_max_rel_diff_vs_dense_fp64": float(((a - ref.detach()).abs() / ref.detach().abs()).max()),
               "grad_max_abs_diff_vs_dense_fp64": float((g - z64.grad).abs().max()),
               "loss_rel_tolerance": loss_tol[dname], "grad_abs_tolerance": grad_tol[dname]}
        row["passed"] = bool(row["loss_max_rel_diff_vs_dense_fp64"] <= loss_tol[dname]
                             and row["loss_max_rel_diff_vs_cpu"] <= loss_tol[dname]
                             and row["grad_max_abs_diff_vs_dense_fp64"] <= grad_tol[dname]
                             and row["grad_max_abs_diff_vs_cpu"] <= 2 * grad_tol[dname])
        r["loss"].append(row)
        ctx.save()
    n, side = (4, 64) if ctx.dry_run else (64, 224)
    r["device_ops"] = []
    for label, cfg in (("erase pixel + mixup/cutmix", AugConfig(img_size=side, re_prob=1.0, re_count=3, re_mode="pixel")),
                       ("erase rand", AugConfig(img_size=side, re_prob=1.0, re_mode="rand", mixup_alpha=0.0,
                                                cutmix_alpha=0.0)),
                       ("erase const", AugConfig(img_size=side, re_prob=1.0, re_mode="const", mixup_alpha=0.0,
                                                 cutmix_alpha=0.0))):
        seeds = tinyvit.augment.seeds.sample_seeds(1, 0, list(range(n)))
        params = tinyvit.augment.plan.plan_device_params(seeds, [(500, 375)] * n, cfg)
        partner = torch.tensor([i ^ 1 for i in range(n)])
        imgs = torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
        cpu = tinyvit.DeviceAugment(cfg)(imgs, params, partner)
        dev = tinyvit.DeviceAugment(cfg)(imgs.to(ctx.device), params, partner)
        same = torch.equal(cpu[0], dev[0].cpu()) and torch.equal(cpu[1], dev[1].cpu())
        r["device_ops"].append({"config": label, "images": n, "bit_identical": bool(same),
                                "max_abs_diff": float((cpu[0] - dev[0].cpu()).abs().max())})
        ctx.save()
    r["passed"] = all(x["passed"] for x in r["loss"]) and all(x["bit_identical"] for x in r["device_ops"])


# ----------------------------------------------------------------------- device ops, H2D
def stage_device_ops(ctx: Ctx):
    """Device ops throughput on a N x 224^2 uint8 batch already on the device, and the uint8
    host->device copy from pageable vs pinned memory."""
    import tinyvit
    import tinyvit.augment.plan
    from tinyvit.augment.config import AugConfig

    r = ctx.result
    n, side, repeats = (8, 64, 2) if ctx.dry_run else (256, 224, 20)
    imgs_host = torch.randint(0, 256, (n, side, side, 3), dtype=torch.uint8)
    imgs = imgs_host.to(ctx.device)
    seeds = tinyvit.augment.seeds.sample_seeds(3, 0, list(range(n)))
    partner = torch.tensor([i ^ 1 for i in range(n)])
    r.update(batch=n, img_size=side, repeats=repeats, ops=[])
    for label, cfg in (("normalize", AugConfig(img_size=side, re_prob=0.0, mixup_alpha=0.0, cutmix_alpha=0.0)),
                       ("normalize + erase(pixel)", AugConfig(img_size=side, re_prob=0.25, re_mode="pixel",
                                                              mixup_alpha=0.0, cutmix_alpha=0.0)),
                       ("normalize + erase(pixel) + mixup/cutmix", AugConfig(img_size=side, re_prob=0.25,
                                                                             re_mode="pixel"))):
        t0 = time.perf_counter()
        params = tinyvit.augment.plan.plan_device_params(seeds, [(500, 375)] * n, cfg)
        plan_s = time.perf_counter() - t0
        aug = tinyvit.DeviceAugment(cfg)
        aug(imgs, params, partner)  # warm-up
        ms = _median_ms(_timed(ctx, lambda: aug(imgs, params, partner), repeats))
        r["ops"].append({"ops": label, "median_ms": ms, "img_s": n / (ms / 1e3), "plan_cpu_ms": plan_s * 1e3})
        ctx.save()
    nbytes = imgs_host.numel()
    r["h2d"] = {"bytes": nbytes}
    if ctx.device == "cuda":
        pinned = imgs_host.pin_memory()
        for label, src, nb in (("pageable", imgs_host, False), ("pinned", pinned, False),
                               ("pinned non_blocking", pinned, True)):
            ms = _median_ms(_timed(ctx, lambda src=src, nb=nb: src.to("cuda", non_blocking=nb), repeats))
            r["h2d"][label] = {"median_ms": ms, "gbs": nbytes / (ms / 1e3) / 1e9}
        ctx.save()
    else:
        r["h2d"]["skipped"] = "no CUDA device: host->device copies not measured"


# ----------------------------------------------------------------------------------- models
def stage_models(ctx: Ctx):
    """TinyViT 5M/11M/21M inference throughput (fp16 autocast, batch 256) beside the paper's V100."""
    import bench_models

    r = ctx.result
    if ctx.dry_run:
        r["note"] = ("dry run: CPU, tinyvit_5m only, batch 1, fp32 (autocast is CUDA-only in "
                     "tinyvit.models.throughput)")
        bench_models.PRESETS = {"tinyvit_5m": bench_models.PRESETS["tinyvit_5m"]}
        rows = bench_models.bench("cpu", 1, 224, 0, 1, (False,))
    else:
        rows = bench_models.bench("cuda", 256, 224, 3, 10, (True,))
    r["rows"] = rows
    for row in rows:
        got = row.get("img_s_amp", row.get("img_s"))
        row["ratio_to_paper_v100"] = got / row["paper_v100_img_s"]


# --------------------------------------------------------------------------------- training
def stage_train(ctx: Ctx):
    """100 AMP training steps of the same student on synthetic in-memory data: hard labels vs
    stored-logit KD (top-K from a LogitStore on disk, read per batch, + the sparse loss) vs
    online KD (a larger timm teacher's forward every step, dense soft CE)."""
    import timm

    import tinyvit
    from tinyvit.loss import sparse_soft_cross_entropy

    r = ctx.result
    dev = ctx.device
    if ctx.dry_run:
        batch, steps, warmup, classes, teacher_name, k = 2, 1, 0, 100, "resnet18", 10
        r["note"] = "dry run: CPU, batch 2, 1 step per mode, 100 classes, resnet18 teacher, bf16 autocast"
    else:
        batch, steps, warmup, classes, teacher_name, k = 128, 100, 10, 21841, ctx.teacher, 10
    amp_dtype = torch.float16 if dev == "cuda" else torch.bfloat16
    n_samples = batch * 8  # a small in-memory dataset cycled through
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_samples, 224, 224, 3), dtype=torch.uint8, generator=g)
    if dev == "cuda":
        images = images.pin_memory()
    labels = torch.randint(0, classes, (n_samples,), generator=g)
    r.update(batch=batch, steps=steps, warmup=warmup, num_classes=classes, topk=k, amp_dtype=str(amp_dtype),
             student="tinyvit_5m", teacher=teacher_name, images=f"{n_samples} synthetic uint8 224x224 in "
             "pinned host memory, normalized on the device", modes={})
    cfg = tinyvit.AugConfig(img_size=224)
    mean, std = cfg.mean, cfg.std
    tmp = tempfile.TemporaryDirectory()
    store = tinyvit.LogitStore.create(os.path.join(tmp.name, "logits"), n_samples, classes, k,
                                      aug_fingerprint="gpu_check synthetic")
    top_i = torch.rand(n_samples, classes, generator=g).topk(k, 1).indices
    top_p = torch.softmax(torch.randn(n_samples, k, generator=g), 1) * 0.9
    store.write(0, torch.arange(n_samples), torch.zeros(n_samples, dtype=torch.int64), top_i, top_p)
    store.flush()
    store.close()
    store = tinyvit.LogitStore.open(os.path.join(tmp.name, "logits"))
    torch.manual_seed(0)
    base = tinyvit.models.PRESETS["tinyvit_5m"].build(num_classes=classes, img_size=224)
    teacher = None

    # Preallocated pinned target buffers, alternating, as a loader would hold them.
    bufs = [(torch.empty(batch, dtype=torch.int64), torch.empty(batch, k, dtype=torch.int64),
             torch.empty(batch, k, dtype=torch.float32)) for _ in range(2)]
    if dev == "cuda":
        bufs = [tuple(t.pin_memory() for t in b) for b in bufs]

    def batch_at(i):
        start = (i * batch) % n_samples  # n_samples is a multiple of batch: a pinned view, no copy
        sl = torch.arange(start, start + batch)
        x = tinyvit.augment.device.normalize(images[start:start + batch].to(dev, non_blocking=True), mean, std)
        return sl, x

    def run(mode):
        nonlocal teacher
        model = copy.deepcopy(base).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(dev, enabled=dev == "cuda")
        if mode == "online_kd" and teacher is None:
            with torch.device(dev):  # initialise the large teacher on the device: seconds, not minutes
                teacher = timm.create_model(teacher_name, pretrained=False, num_classes=classes).eval()

        def step(i):
            sl, x = batch_at(i)
            if mode == "stored_kd":
                _, ti, tp = store.read(0, sl, out=bufs[i % 2])
                ti, tp = ti.to(dev, non_blocking=True), tp.to(dev, non_blocking=True)
            with torch.autocast(dev, dtype=amp_dtype):
                if mode == "online_kd":
                    with torch.no_grad():
                        target = teacher(x).float().softmax(1)
                out = model(x)
                if mode == "hard":
                    loss = torch.nn.functional.cross_entropy(out.float(), labels[sl].to(dev, non_blocking=True))
                elif mode == "stored_kd":
                    loss = sparse_soft_cross_entropy(out, ti, tp)
                else:
                    loss = torch.sum(-target * out.float().log_softmax(1), 1).mean()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            return loss

        for i in range(warmup):
            step(i)
        ctx.sync()
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(warmup + i)
        ctx.sync()
        dt = time.perf_counter() - t0
        e = {"seconds": dt, "ms_per_step": dt / steps * 1e3, "img_s": steps * batch / dt,
             "final_loss": float(loss.detach())}
        if dev == "cuda":
            e["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        r["modes"][mode] = e
        ctx.save()

    for mode in ("hard", "stored_kd", "online_kd"):
        run(mode)
    m = r["modes"]
    r["stored_kd_overhead_pct"] = 100 * (m["stored_kd"]["seconds"] / m["hard"]["seconds"] - 1)
    r["online_kd_overhead_pct"] = 100 * (m["online_kd"]["seconds"] / m["hard"]["seconds"] - 1)
    if not ctx.dry_run:
        r["target_stored_kd_overhead_pct"] = TARGETS["stored_kd_overhead_pct"]
        r["passed"] = r["stored_kd_overhead_pct"] <= TARGETS["stored_kd_overhead_pct"]
    store.close()
    tmp.cleanup()


STAGES = {"loss": stage_loss, "agreement": stage_agreement, "device_ops": stage_device_ops,
          "models": stage_models, "train": stage_train}
