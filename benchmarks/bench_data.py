"""``make bench-data``: clips per second of the EmoCue loader beside raw decoding and a plain loader, as ratios.

Three pipelines read the same generated clips through the same ``torch.utils.data.DataLoader`` settings (persistent
workers as in training, warmed up by one untimed epoch; batch size; one torch thread per worker):

- **raw decode**: PyAV demuxes and decodes every packet of every stream, no conversion at all (the reference a loader
  built on the same library is measured against: what decoding alone costs);
- **EmoCue loader**: the DataModule's dataset and collator, as training uses them: 16 frames sampled uniformly,
  converted from YUV straight to RGB at the encoder's size (CLIP-style short side + centre crop, 224 px) as uint8,
  and the first 12 s of audio as 16 kHz mono float (encoders scale and normalise frames on the accelerator, which
  also moves 4x fewer bytes); a second line adds the CLIP normalisation to float32 on the CPU, like the image
  processor's output, to show what that costs;
- **plain loader**: every frame decoded and converted to RGB at full size, the 16 chosen frames run through a
  transformers ``CLIPImageProcessor`` (built from a config dict, no download), all audio decoded and resampled.

Each pipeline runs ``--repeats`` times, interleaved; the best run of each is reported (the least disturbed by
other work on the machine) and the ratios come from those numbers, both in clips per second (wall time) and in
clips per CPU-second (main process plus workers), which stays steady when other programs share the cores.

On an idle machine every pipeline keeps the same cores busy, so the wall-time ratios approach the CPU-time ones;
on a shared machine the CPU-time ratios are the ones to read.

Usage: ``python benchmarks/bench_data.py [--n 48] [--size 640] [--workers 2] [--repeats 3]`` (the clips are generated
once into the temp dir and reused).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_processor(size: int):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(do_resize=True, size={"shortest_edge": size}, resample=3, do_center_crop=True,
                              crop_size={"height": size, "width": size}, do_rescale=True, rescale_factor=1 / 255,
                              do_normalize=True, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
                              do_convert_rgb=False)


class RawDecode(torch.utils.data.Dataset):
    """Every packet of every stream decoded by PyAV, nothing converted -> the number of frames decoded."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> int:
        import av

        n = 0
        with av.open(str(self.paths[i])) as c:
            for packet in c.demux():
                n += len(packet.decode())
        return n


class PlainLoader(torch.utils.data.Dataset):
    """The straightforward loader: decode and convert every frame, then the image processor on the chosen ones."""

    def __init__(self, paths: list[Path], num_frames: int, size: int, sample_rate: int, seconds: float) -> None:
        self.paths, self.num_frames, self.size = paths, num_frames, size
        self.sample_rate, self.seconds = sample_rate, seconds
        self.processor = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        import av

        from xemogpt.data.decode import uniform_indices

        if self.processor is None:
            self.processor = clip_processor(self.size)
        with av.open(str(self.paths[i])) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        with av.open(str(self.paths[i])) as c:
            res = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
            chunks = [r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in res.resample(f)]
        audio = np.concatenate(chunks)[: int(self.seconds * self.sample_rate)]
        chosen = [frames[k] for k in uniform_indices(len(frames), self.num_frames)]
        pixels = self.processor(images=chosen, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels, "audio": torch.from_numpy(audio)}


def plain_collate(items: list[dict]) -> dict:
    n = max(len(it["audio"]) for it in items)
    audio = torch.zeros(len(items), n)
    for k, it in enumerate(items):
        audio[k, : len(it["audio"])] = it["audio"]
    return {"pixel_values": torch.stack([it["pixel_values"] for it in items]), "audio": audio}


class NormalizingCollator:
    """The DataModule's collator, then frames scaled to [0, 1] and normalised like the image processor does."""

    def __init__(self, collator) -> None:
        self.collator = collator
        std = torch.tensor(CLIP_STD).view(1, 1, 3, 1, 1)
        self.scale = 1.0 / (255.0 * std)
        self.shift = torch.tensor(CLIP_MEAN).view(1, 1, 3, 1, 1) / std

    def __call__(self, items: list[dict]) -> dict:
        batch = self.collator(items)
        batch["pixel_values"] = batch["frames"].float().mul_(self.scale).sub_(self.shift)
        return batch


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def count(batch) -> int:
    """Clips in a batch of any of the three pipelines."""
    if isinstance(batch, list):
        return len(batch)
    if "ids" in batch:
        return len(batch["ids"]) + len(batch["skipped"])
    return len(batch["audio"])


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(loader) -> float:
    """CPU time of this process plus the loader's (persistent) workers."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    workers = getattr(getattr(loader, "_iterator", None), "_workers", [])
    return me.ru_utime + me.ru_stime + sum(_process_cpu(w.pid) for w in workers)


def make_loader(dataset, collate, batch_size: int, workers: int):
    """A DataLoader with persistent workers (as the DataModule uses), warmed up by one untimed epoch."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                                         worker_init_fn=_one_thread if workers else None,
                                         persistent_workers=workers > 0)
    for _ in loader:
        pass
    return loader


def timed(loader, n: int) -> tuple[float, float]:
    """(clips per second, clips per CPU-second) of one epoch of a warmed-up loader.

    CPU time counts the main process and the workers; unlike wall time it hardly changes when other programs compete
    for the cores, so its ratios are the steadier measure on a busy machine.
    """
    c0, t0 = _cpu_seconds(loader), time.perf_counter()
    seen = sum(count(batch) for batch in loader)
    dt = time.perf_counter() - t0
    cpu = _cpu_seconds(loader) - c0
    if seen != n:
        raise RuntimeError(f"the loader returned {seen} clips instead of {n}")
    return n / dt, n / max(cpu, 1e-9)


def make_clips(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    from xemogpt.data.schema import read_manifest
    from xemogpt.data.synth import generate

    if not (folder / "manifest.jsonl").exists() or len(read_manifest(folder)) != n:
        print(f"generating {n} synthetic clips at {size}x{size} into {folder} ...", flush=True)
        generate(folder, n=n, seed=seed, workers=min(4, os.cpu_count() or 1), size=size, progress=False)
    return [folder / s.video for s in read_manifest(folder)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=48, help="clips (default 48)")
    p.add_argument("--size", type=int, default=640, help="side of the generated clips in pixels (default 640, close to "
                   "the TV and film clips of MER/EMER data)")
    p.add_argument("--image-size", type=int, default=224, help="encoder input side (default 224, CLIP)")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--workers", type=int, default=2, help="loader worker processes for every pipeline (default 2)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs per pipeline; the best counts")
    p.add_argument("--data", default=None, help="folder for the generated clips (default: a cache in the temp dir)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    from xemogpt.data.datamodule import Collator, EmoCueDataset
    from xemogpt.data.schema import read_manifest

    folder = Path(args.data) if args.data else Path(tempfile.gettempdir()) / f"xemogpt-bench-{args.n}-{args.size}"
    paths = make_clips(folder, args.n, args.size, args.seed)
    samples = read_manifest(folder)
    ours = EmoCueDataset(folder, samples, num_frames=args.frames, frame_size=args.image_size, sample_rate=16000,
                         max_seconds=12.0, crop=True)
    collate = Collator({s.id: s for s in samples}, args.frames, args.image_size)
    plain = PlainLoader(paths, args.frames, args.image_size, 16000, 12.0)
    plain.processor = clip_processor(args.image_size)  # built (not run) before the workers fork: no import per run
    names = ["raw decode (PyAV, every packet, no conversion)",
             "EmoCue loader (16 RGB frames at 224 uint8 + 12 s 16 kHz audio)",
             "EmoCue loader + CPU normalisation to float32",
             "plain loader (all frames RGB + CLIPImageProcessor)"]
    pipelines = dict(zip(names, [(RawDecode(paths), list), (ours, collate), (ours, NormalizingCollator(collate)),
                                 (plain, plain_collate)]))
    print("starting loaders (one warm-up epoch each) ...", flush=True)
    loaders = {name: make_loader(ds, fn, args.batch_size, args.workers) for name, (ds, fn) in pipelines.items()}
    rates: dict[str, list[tuple[float, float]]] = {k: [] for k in pipelines}
    for _ in range(args.repeats):
        for name, loader in loaders.items():
            rates[name].append(timed(loader, len(paths)))
    del loaders
    gc.collect()
    # Both loaders give the encoder the same input (checked after timing: the image processor's thread pool in the
    # parent would deadlock forked workers).
    a = NormalizingCollator(collate)([ours[0], ours[1]])["pixel_values"]
    b = plain_collate([plain[0], plain[1]])["pixel_values"]
    assert a.shape == b.shape == (2, args.frames, 3, args.image_size, args.image_size), (a.shape, b.shape)
    agree = float((a - b).abs().mean())
    wall = {k: max(r[0] for r in v) for k, v in rates.items()}
    cpu = {k: max(r[1] for r in v) for k, v in rates.items()}
    print(f"\n{len(paths)} clips of {args.size}x{args.size} px, {args.workers} worker(s), batch {args.batch_size}, "
          f"best of {args.repeats} (python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")
    print("  clips/s  clips/CPU-s  pipeline")
    for name in names:
        print(f"  {wall[name]:7.1f}  {cpu[name]:11.1f}  {name}")
    print(f"  mean |difference| of the two loaders' normalised pixels: {agree:.3f} (resampling filters differ)")
    for label, r in (("clips/s", wall), ("clips per CPU-second", cpu)):
        r_raw, r_plain = r[names[1]] / r[names[0]], r[names[1]] / r[names[3]]
        print(f"\n{label}:\n  loader / raw decode   = {r_raw:.2f}   (target >= 0.8: "
              f"{'met' if r_raw >= 0.8 else 'NOT met'})\n  loader / plain loader = {r_plain:.2f}   (target >= 3.0: "
              f"{'met' if r_plain >= 3.0 else 'NOT met'})\n  with CPU normalisation: {r[names[2]] / r[names[0]]:.2f} "
              f"of raw decode, {r[names[2]] / r[names[3]]:.2f}x the plain loader")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
