"""The Ray engine's overhead: the tiny InstructPix2Pix exported locally and on Ray with 1 and 2 CPU editor actors.

What it measures, on this machine, in one run:

1. Wall seconds and CPU seconds of every process (the driver, and for Ray every process of the local cluster: its
   daemons, the decode/write task workers and the editor actors), sampled every 50 ms with psutil so that workers
   that exit at the end still count, for two plan sizes N1 < N2 samples. From the pair: the Ray path's marginal
   CPU-seconds per sample beyond the local engine's, and its fixed cost per run (worker start, imports, model load
   per actor, Ray Data's start and stop).
2. Where it goes: serialisation, timed directly (pickle.dumps + loads of what each stage hands the next for one
   chunk, with its bytes), the CPU of Ray's daemons (scheduling and bookkeeping: gcs_server, raylet, ...), and the
   rest (Ray Data's executor in the driver, the object store's copies, task and actor calls).
3. That overhead as a share of a full-size Î's cost: the H200's measured 0.253 s per Î (bench/RESULTS.md, the paper
   preset in float16 at batch 32), and the 2-core CPU's stored ~630 CPU-s per Î (diffusemix.cost.STORED_CPU).

    flock /tmp/diffusemix-heavy.lock python bench/bench_ray.py [--per-class 3,11] [--batch 4] [--size 64]

The local cluster is started here with ``ray.init(num_cpus=2)``; editor actors ask for half a CPU each so that the
decode and write tasks keep a CPU (as in tests/test_export_ray.py).
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

#: bench/RESULTS.md (2026-12-04, H200): the paper preset, float16, batch 32, seconds per Î (extrapolated to 100 steps)
H200_S_PER_IHAT = 0.2527
#: Ray daemons by process name (everything of the local cluster that is not a worker)
_DAEMONS = ("gcs_server", "raylet", "dashboard", "log_monitor", "monitor.py", "runtime_env", "agent")


class CpuSampler:
    """CPU seconds (user + system) of this process and of every process under it, sampled every ``period`` s.

    A process that exits between two samples loses at most ``period`` of CPU: the last value seen is kept.
    """

    def __init__(self, period: float = 0.05) -> None:
        import psutil

        self.psutil, self.period = psutil, period
        self.me = psutil.Process()
        self.last: dict[int, tuple[str, float]] = {}
        self.base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: CPU seconds the sampling thread itself used (taken off the driver's)
        self.own = 0.0

    def _sample(self) -> None:
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                name = "driver" if p.pid == self.me.pid else " ".join(p.cmdline()[:2]) or p.name()
                self.last[p.pid] = (name, t.user + t.system)
            except self.psutil.Error:
                pass

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            t = time.thread_time()
            self._sample()
            self.own += time.thread_time() - t

    def __enter__(self) -> "CpuSampler":
        self._sample()
        self.base = {pid: cpu for pid, (_, cpu) in self.last.items()}
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._sample()

    def by_kind(self) -> dict[str, float]:
        """CPU seconds used while sampling: ``driver``, ``daemons``, ``workers``."""
        out = {"driver": 0.0, "daemons": 0.0, "workers": 0.0}
        for pid, (name, cpu) in self.last.items():
            used = cpu - self.base.get(pid, 0.0)
            kind = "driver" if name == "driver" else ("workers" if "ray::" in name or "default_worker" in name
                                                       else "daemons")
            out[kind] += used
        return out


def _export(data: Path, out: Path, fractals, model: Path, *, size: int, batch: int, **options) -> float:
    from diffusemix.editors import load_editor
    from diffusemix.export import ExportOptions, export_dataset
    from diffusemix.recipe import Recipe

    editor = load_editor("instruct-pix2pix", model=str(model), device="cpu", dtype="float32", steps=2,
                         batch_size=batch)
    t = time.perf_counter()
    export_dataset(data, out, recipe=Recipe(size=size, prompts=("sunset", "snowy"), seam=4), editor=editor,
                   fractals=fractals, options=ExportOptions(**options), progress_bar=False)
    return time.perf_counter() - t


def serialisation(data: Path, out: Path, fractals, model: Path, *, size: int, batch: int) -> dict[str, float]:
    """Bytes and seconds (dumps + loads) of what each stage hands the next, for one chunk; per sample."""
    from diffusemix.editors import load_editor
    from diffusemix.export import ExportOptions
    from diffusemix.export.plan import chunks, iter_samples
    from diffusemix.export.ray_stages import _Decoded, _Todo, _Written
    from diffusemix.export.scan import scan_input
    from diffusemix.export.stream import decode_chunk, edit_chunk
    from diffusemix.export.writer import Writer
    from diffusemix.recipe import Recipe

    recipe = Recipe(size=size, prompts=("sunset", "snowy"), seam=4)
    options = ExportOptions(chunk_size=batch)
    chunk = next(chunks(iter_samples(scan_input(data), recipe, fractals.names, options)))
    editor = load_editor("instruct-pix2pix", model=str(model), device="cpu", dtype="float32", steps=2,
                         batch_size=batch)
    images, reused = decode_chunk(chunk, recipe, False)
    edited = edit_chunk(chunk, images, reused, editor=editor)
    out.mkdir(parents=True, exist_ok=True)  # the writer makes folders only inside an OUTPUT that exists
    writer = Writer(out, options, fractals, None, "bench", False, run_fields={})
    written = [writer.write(s, edited.images[s.entry.source], edited.made[s.file_name]) for s in edited.to_write()]
    stages = {"driver → decode": _Todo(chunk, {}), "decode → editor": _Decoded(chunk, images, reused),
              "editor → write": (edited, 0, "x"), "write → driver": _Written(edited, written, 0, "x")}
    got: dict[str, float] = {}
    total_s = total_b = 0.0
    for name, obj in stages.items():
        t = time.perf_counter()
        for _ in range(20):
            blob = pickle.dumps(obj, protocol=5)
            pickle.loads(blob)
        seconds = (time.perf_counter() - t) / 20
        got[name] = len(blob) / len(chunk)
        total_s += seconds
        total_b += len(blob)
    got["seconds per sample"] = total_s / len(chunk)
    got["bytes per sample"] = total_b / len(chunk)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", default="3,100", help="images per class of the two plans (2 classes, plus one"
                    " odd-sized image; 2 prompts each): N = (2 x per class + 1) x 2 samples")
    ap.add_argument("--batch", type=int, default=4, help="batch and chunk size")
    ap.add_argument("--size", type=int, default=64, help="image side")
    args = ap.parse_args()
    per_class = [int(x) for x in args.per_class.split(",")]
    n1, n2 = ((2 * pc + 1) * 2 for pc in per_class)

    import ray
    import torch

    from diffusemix.fractals import FractalSet, write_fractal_set
    from export_helpers import make_dataset
    from tiny_pipelines import build_tiny_ip2p

    torch.set_num_threads(1)  # as each actor (half a CPU: one thread); the figures compare like with like
    root = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        model = build_tiny_ip2p(root / "tiny-ip2p")
        write_fractal_set(root / "fractals", count=8, size=args.size, seed=1)
        fractals = FractalSet.from_folder(root / "fractals")
        datas = {}
        for n, pc in zip((n1, n2), per_class):
            datas[n] = make_dataset(root / f"data{n}", classes=("a", "b"), per_class=pc,
                                    size=(args.size + 8, args.size))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        time.sleep(2.0)  # let the cluster settle before measuring
        with CpuSampler() as idle:
            time.sleep(5.0)
        idle_per_s = sum(idle.by_kind().values()) / 5.0
        rows = []
        for engine, extra in (("local", {}), ("ray, 1 actor", dict(engine="ray", ray_actors=1,
                                                                   ray_cpus_per_actor=0.5)),
                              ("ray, 2 actors", dict(engine="ray", ray_actors=2, ray_cpus_per_actor=0.5))):
            for n in (n1, n2):
                ru0 = resource.getrusage(resource.RUSAGE_SELF)
                with CpuSampler() as cpu:
                    wall = _export(datas[n], root / f"out-{engine}-{n}".replace(" ", "_").replace(",", ""), fractals,
                                   model, size=args.size, batch=args.batch, **extra)
                ru1 = resource.getrusage(resource.RUSAGE_SELF)
                kinds = cpu.by_kind()
                # the driver's own figure is exact (all its threads), less the sampler's
                kinds["driver"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime) - cpu.own
                rows.append((engine, n, wall, kinds))
                print(f"{engine:14s} N={n:4d}: {wall:6.1f} s wall, CPU-s driver {kinds['driver']:.1f}, "
                      f"daemons {kinds['daemons']:.1f}, workers {kinds['workers']:.1f}", flush=True)
        ser = serialisation(datas[n1], root / "ser", fractals, model, size=args.size, batch=args.batch)
        ser256 = serialisation(datas[n1], root / "ser256", fractals, model, size=256, batch=args.batch)
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    # the report
    def total(r):
        return sum(r[3].values())

    by = {(r[0], r[1]): r for r in rows}
    local_marginal = (total(by["local", n2]) - total(by["local", n1])) / (n2 - n1)
    print(f"\nThe tiny InstructPix2Pix (float32, 2 steps, {args.size} px, batch {args.batch}); N1={n1}, N2={n2}"
          f" samples; Ray's idle cluster uses {idle_per_s:.2f} CPU-s per second (counted in the daemons).")
    print(f"local engine: {local_marginal:.3f} CPU-s per sample (marginal), "
          f"{total(by['local', n2]) / n2:.3f} CPU-s per sample at N2\n")
    print("| engine | CPU-s per sample (marginal) | overhead per sample vs local | fixed CPU-s per run | wall at N2 |"
          " driver / daemons / workers at N2 (CPU-s) |")
    print("|---|---|---|---|---|---|")
    overheads = {}
    for engine in ("local", "ray, 1 actor", "ray, 2 actors"):
        a, b = by[engine, n1], by[engine, n2]
        marginal = (total(b) - total(a)) / (n2 - n1)
        over = marginal - local_marginal
        fixed = total(a) - marginal * n1 - (total(by["local", n1]) - local_marginal * n1)
        overheads[engine] = (over, fixed, b)
        k = b[3]
        print(f"| {engine} | {marginal:.3f} | {over:+.3f} | {fixed:.1f} | {b[2]:.1f} s |"
              f" {k['driver']:.1f} / {k['daemons']:.1f} / {k['workers']:.1f} |")
    print("\nSerialisation (pickle protocol 5, dumps + loads of each hand-over), bytes per sample:")
    for name, value in ser.items():
        if name.endswith("per sample"):
            continue
        print(f"- {name}: {value / 1e3:.1f} kB")
    print(f"- in all: {ser['bytes per sample'] / 1e3:.1f} kB and {ser['seconds per sample'] * 1e3:.2f} ms per sample"
          f" at {args.size} px; at 256 px (the reference size) {ser256['bytes per sample'] / 1e3:.0f} kB and"
          f" {ser256['seconds per sample'] * 1e3:.2f} ms per sample")
    print("\nRatios measured in this run:")
    for engine in ("ray, 1 actor", "ray, 2 actors"):
        over, fixed, b = overheads[engine]
        k = b[3]
        daemons = k["daemons"] / n2
        ser_share = ser["seconds per sample"] / over if over > 0 else float("nan")
        print(f"- {engine}: overhead {over:.3f} CPU-s per sample beyond the local engine's "
              f"({over / local_marginal:.2f}x the local CPU per sample of this tiny model); serialisation "
              f"{ser['seconds per sample'] * 1e3:.2f} ms of it ({ser_share:.1%}), Ray's daemons {daemons:.3f} CPU-s "
              f"per sample at N2 (scheduling, bookkeeping, idle polling), the rest in the driver's executor, the"
              f" object store and the workers; fixed {fixed:.1f} CPU-s per run; wall at N2 "
              f"{b[2] / by['local', n2][2]:.2f}x the local run's")
        print(f"  as a share of a full-size Î: {over / H200_S_PER_IHAT:.1%} of the H200's {H200_S_PER_IHAT} s per Î"
              f" (host CPU-s against GPU-s: {over / H200_S_PER_IHAT:.2f} CPU cores per GPU actor to keep up), "
              f"{over / 630:.4%} of the 2-core CPU's ~630 CPU-s per Î; the fixed {fixed:.1f} CPU-s per run is"
              f" {fixed / H200_S_PER_IHAT:.0f} Î of an H200")


if __name__ == "__main__":
    main()
