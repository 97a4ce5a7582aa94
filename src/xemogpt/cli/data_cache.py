"""Cache the outputs of a recipe's (frozen) encoders for every clip, so training stages skip decoding and encoding.

Features are stored per clip under a key of the encoder (class, spec, weight fingerprint) and the preprocessing, in
<data root>/.cache/features (or data.features_dir); a changed encoder or preprocessing never reuses them. Training
fills and uses the cache by itself for stages whose encoders are frozen; run this ahead of time to do the encoding
once (e.g. on a GPU machine) or to check a dataset end to end. Bad clips are skipped and counted.

Examples:
  xemogpt data cache --recipe recipes/xemogpt-paper.yaml --device cuda
  torchrun --nproc-per-node 8 -m xemogpt data cache --recipe recipes/xemogpt-paper.yaml trainer.devices=8
  xemogpt data cache --checkpoint runs/xemogpt-tiny --modality video
"""

from __future__ import annotations

import argparse

COMMAND = ("data", "cache")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--recipe", help="recipe YAML: encoders built from model.video_encoder/audio_encoder")
    src.add_argument("--checkpoint", help="a run folder or .ckpt: its trained encoders and its recipe")
    p.add_argument("--root", help="dataset folder or pack (default: the recipe's data.root)")
    p.add_argument("--modality", action="append", choices=("video", "audio"),
                   help="cache this modality only (repeatable; default both)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: the recipe's trainer accelerator "
                   "and devices)")
    p.add_argument("--batch-size", type=int, default=None, help="video clips per encoder batch (default: "
                   "data.eval_batch_size or data.batch_size)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad sample instead of skipping it")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("overrides", nargs="*", help="recipe overrides key.sub=value (e.g. data.num_workers=8)")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    import time
    from types import SimpleNamespace

    from xemogpt.data.feature_cache import device_options
    from xemogpt.data.problems import BadSampleError
    from xemogpt.data.streaming import is_remote
    from xemogpt.recipe import apply_overrides, load_recipe
    from xemogpt.training.run import data_module, ensure_data, predict_options

    logging.basicConfig(level=logging.ERROR, format="%(message)s")
    t0 = time.time()
    try:
        if args.checkpoint:
            from xemogpt.checkpointing.files import run_recipe_of
            from xemogpt.models.loading import load_model

            recipe = apply_overrides(run_recipe_of(args.checkpoint), args.overrides)
            model = load_model(args.checkpoint)
            venc, aenc = model.video_encoder, model.audio_encoder
        else:
            from xemogpt.models.xemogpt import XEmoGPT

            recipe = load_recipe(args.recipe, args.overrides)
            # Built as `xemogpt train` builds them (each from its own seeded stream): the same weights, the same cache.
            model = XEmoGPT(recipe["model"], parts=["video_encoder", "audio_encoder"], seed=int(recipe.get("seed", 0)))
            venc, aenc = model.video_encoder, model.audio_encoder
        data = dict(recipe["data"])
        if args.root:
            data["root"] = args.root
        if args.strict:
            data["strict"] = True
        if args.batch_size:
            data["eval_batch_size"] = args.batch_size
        recipe = {**recipe, "data": data}
        root = data["root"] if is_remote(data["root"]) else ensure_data(data)  # generates synthetic data if asked
        dm = data_module(recipe, SimpleNamespace(video_encoder=venc, audio_encoder=aenc), root)
        if dm.features == "off":
            print("xemogpt data cache: data.features is off in this recipe; nothing to do", file=sys.stderr)
            return 2
        mods = set(args.modality or ("video", "audio"))
        # Trainer.predict with the recipe's accelerator, devices and nodes (one process per device under torchrun
        # or srun encodes its share), or on the one --device given
        options = predict_options(recipe) if args.device == "auto" else device_options(args.device)
        reports = dm.use_features(venc if "video" in mods else None, aenc if "audio" in mods else None,
                                  trainer_options=options, progress=not args.no_progress)
    except BadSampleError as e:
        print(f"xemogpt data cache: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as e:  # bad recipe, root or checkpoint
        print(f"xemogpt data cache: {e}", file=sys.stderr)
        return 2
    for r in reports:
        print(r.summary())
    print(f"data: {dm.skips.summary()}")
    log = dm.skips.write(dm.features_base() / "cache_log.txt")
    print(f"feature cache: {dm.features_base()} (per-sample log: {log}); {time.time() - t0:.1f} s")
    return 0
