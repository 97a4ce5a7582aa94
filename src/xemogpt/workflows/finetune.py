"""Fine-tuning a trained run on a new dataset: import it, evaluate before, train chosen parts, evaluate after.

A fine-tune recipe (``recipes/finetune/*.yaml``) is a recipe whose ``finetune`` section says where to start and how
to get the data; the model comes from the checkpoint (architecture and tokenizer), so the recipe has no ``model``::

    name: finetune-moods-tiny
    finetune:
      from: runs/xemogpt-tiny                 # a run folder, an export folder (xemogpt export) or a .ckpt file
      dataset:                                # how data.root is made when it has no manifest.jsonl yet
        generate: {style: moods, out: data/moods-raw, n: 300, seed: 7}   # optional: a demo dataset's raw files
        import: {format: generic, labels: data/moods-raw/labels.csv, media: [data/moods-raw]}
      llm_head: lora                          # lora: add LoRA adapters to the LLM head; keep: train it as it is
      lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}
      target: emotion_accuracy                # the metric the summary leads with (lm_loss: lower is better)
    data: {root: data/moods, batch_size: 16}
    stages:
      - {name: finetune, train: [video_projector, audio_projector, llm_head], losses: [lm], epochs: 10, lr: 1.0e-3}

Components not listed in a stage's ``train`` stay frozen. ``data``, ``trainer``, ``generation``, ``eval`` and ``run``
are merged over the starting run's recipe (the fine-tune's keys win), so clips are decoded exactly as the model
was trained. The run folder is an ordinary run (``recipe.yaml``, ``checkpoints/``, ``model.ckpt``, ``logs/``,
``eval/``) plus ``eval-before/`` and ``finetune.md`` (before / after / gain), so ``xemogpt eval``, ``export``,
``explain`` and another ``finetune`` accept it.

Reproducibility: a fine-tune is a function of the starting run, the recipe and ``seed`` (default: the starting run's)
-- bit for bit on one machine with one thread count (``run.threads``, default every core). The new LoRA weights are
drawn right after seeding; making the data (generate, import, decode into a cold cache) and the "before" evaluation
happen inside :class:`~xemogpt.training.callbacks.preserve_rng`, so training starts from the same random state whether
the data existed already and whether ``--no-eval`` was given; evaluation seeds its own sampling. Not covered:
another thread count (CPU reductions split differently; differences from the last bit up) and CUDA kernels that
have no deterministic version unless the recipe sets ``trainer.deterministic: true``.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from xemogpt.recipe import FINETUNE_GENERATE_STYLES as GENERATE_STYLES
from xemogpt.recipe import FINETUNE_HEAD_MODES as HEAD_MODES
from xemogpt.recipe import RecipeError, save_recipe, validate_sections

MERGED_KEYS = ("data", "trainer", "generation", "eval", "run")
LOWER_IS_BETTER = ("lm_loss",)  # every other metric of the evaluation is better when higher


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve_finetune_recipe(recipe: dict[str, Any], base_recipe: dict[str, Any], components: dict[str, Any],
                            source: str) -> dict[str, Any]:
    """The recipe a fine-tune run saves: the starting run's recipe with the fine-tune's sections merged over it, its
    ``model`` section taken from the checkpoint, ``checkpoint`` pointing at the starting run."""
    ft = recipe.get("finetune") or {}
    if not recipe.get("stages"):
        raise RecipeError("a fine-tune recipe needs 'stages' (what trains, which losses, how long)")
    if "model" in recipe:
        raise RecipeError("a fine-tune recipe takes its model from finetune.from; remove the 'model' section")
    out: dict[str, Any] = {"name": recipe.get("name", "finetune"),
                           "description": recipe.get("description", base_recipe.get("description", "")),
                           "seed": int(recipe.get("seed", base_recipe.get("seed", 0))),
                           "model": copy.deepcopy(components)}
    for key in MERGED_KEYS:
        base_part = {k: v for k, v in (base_recipe.get(key) or {}).items() if not (key == "data" and k == "synth")}
        out[key] = _merge(base_part, recipe.get(key) or {})
    if "root" not in (recipe.get("data") or {}):
        raise RecipeError("a fine-tune recipe needs data.root: the folder of the new dataset (made by the import)")
    out["stages"] = copy.deepcopy(recipe["stages"])
    out["checkpoint"] = str(source)
    out["finetune"] = copy.deepcopy(ft)
    return out


def prepare_dataset(ft: dict[str, Any], root: Path, echo=print) -> Path:
    """Make ``root`` (an EmoCue folder) from ``finetune.dataset`` when it has no manifest.jsonl yet."""
    if (root / "manifest.jsonl").exists():
        return root
    ds = ft.get("dataset") or {}
    gen, imp = ds.get("generate"), ds.get("import")
    if not imp:
        raise FileNotFoundError(f"data.root {root} has no manifest.jsonl and the recipe has no finetune.dataset.import "
                                "(format, media, labels ...); import the dataset first with `xemogpt data import`")
    if gen:
        style = gen.get("style", "moods")
        if style not in GENERATE_STYLES:
            raise RecipeError(f"finetune.dataset.generate.style must be one of {GENERATE_STYLES}, got {style!r}")
        raw = Path(gen["out"]) if gen.get("out") else None
        if raw is None:
            raise RecipeError("finetune.dataset.generate.out is missing: the folder for the raw clips and table")
        workers = int(gen.get("workers", min(2, os.cpu_count() or 1)))
        if style == "moods":
            from xemogpt.workflows.moods import TABLE, generate_moods

            if not (raw / TABLE).exists():
                echo(f"generating {gen.get('n', 300)} mood clips into {raw} ...")
                generate_moods(raw, n=int(gen.get("n", 300)), seed=int(gen.get("seed", 0)), workers=workers,
                               size=int(gen.get("size", 112)))
        elif not (raw / "manifest.jsonl").exists():
            from xemogpt.data.synth import generate

            generate(raw, n=int(gen.get("n", 300)), seed=int(gen.get("seed", 0)), workers=workers,
                     size=int(gen.get("size", 112)))
    from xemogpt.data.adapters import get_adapter, import_dataset, parse_map

    fmt = imp.get("format")
    if not fmt:
        raise RecipeError("finetune.dataset.import.format is missing (generic, emer-v2, mer-discrete, ravdess ...)")
    cmap = imp.get("map") or {}
    cmap = parse_map(cmap) if isinstance(cmap, list) else {str(k): str(v) for k, v in cmap.items()}
    media = imp.get("media") or []
    media = [media] if isinstance(media, str) else list(media)
    adapter = get_adapter(fmt)(media, descriptions=imp.get("descriptions"), labels=imp.get("labels"),
                               subtitles=imp.get("subtitles"), column_map=cmap, language=imp.get("language", "en"),
                               cues=imp.get("cues", "auto"), split_from=imp.get("split_from"),
                               split_ratios=imp.get("split_ratios", (0.8, 0.1, 0.1)), seed=int(imp.get("seed", 0)),
                               strict=bool(imp.get("strict", False)))
    echo(f"importing {fmt} data into {root} ...")
    result = import_dataset(adapter, root, copy=bool(imp.get("copy", False)))
    echo(result.report.summary())
    if not result.samples:
        raise RuntimeError(f"the import into {root} kept no sample; see {root}/import_log.txt")
    return root


def add_lora(model, lora: dict[str, Any] | None) -> bool:
    """Give the LLM head LoRA adapters (frozen base weights) and record it in the hyper-parameters a checkpoint
    carries, so the fine-tuned run reloads with the same structure. Returns False when it already had them."""
    from xemogpt.llm.causal_lm import apply_lora

    head = model.llm_head
    if head.hparams.get("train_mode") == "lora":
        return False
    cfg = dict(lora or {})
    head.model = apply_lora(head.model, cfg)
    head.hparams["train_mode"] = "lora"
    head.hparams["lora"] = cfg
    comps = model.hparams["components"]
    spec = comps["llm_head"]
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    spec.update({"train_mode": "lora", "lora": cfg})
    comps["llm_head"] = spec
    return True


def lm_loss(model, dm, split: str = "test", batch_size: int = 16) -> float | None:
    """Mean per-token cross-entropy of the reference descriptions of ``split`` (teacher forcing)."""
    import torch

    from xemogpt.data.batch import to_device

    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in dm._loader(split, shuffle=False, batch_size=batch_size):
            if not batch["ids"]:
                continue
            batch = to_device(batch, model.device)
            sp = model.spliced(batch, with_targets=True)
            out = model.llm_head(sp.inputs_embeds, sp.attention_mask, sp.position_ids, sp.labels)
            n = int((sp.labels[:, 1:] != -100).sum())  # HF shifts labels by one inside the loss
            total += float(out.loss) * n
            tokens += n
    return total / tokens if tokens else None


def _evaluate(model, dm, resolved: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    from xemogpt.evaluation.evaluate import evaluate_model

    ev = resolved.get("eval") or {}
    split = ev.get("split", "test")
    metrics = evaluate_model(model, dm, out_dir, split=split, extractor=ev.get("extractor", "offline"),
                             batch_size=int(ev.get("batch_size", 32)), baselines=bool(ev.get("baselines", True)),
                             wheels=ev.get("wheels"), seed=int(resolved.get("seed", 0)))
    metrics["model"]["lm_loss"] = lm_loss(model, dm, split, int(ev.get("batch_size", 32)))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


def finetune(recipe: dict[str, Any], run_dir: str | Path, evaluate: bool = True, echo=print) -> dict[str, Any]:
    """Run a fine-tune recipe into ``run_dir``; returns the summary (before / after metrics, gains, timings)."""
    import lightning as L
    import torch

    from xemogpt.checkpointing.files import run_recipe_of
    from xemogpt.data.schema import read_manifest
    from xemogpt.models.loading import load_model
    from xemogpt.training.callbacks import preserve_rng
    from xemogpt.training.run import data_module, make_trainer
    from xemogpt.utils.threads import default_threads
    from xemogpt.workflows.ablate_report import flat_metrics

    t0 = time.time()
    ft = recipe.get("finetune") or {}
    if not ft:
        raise RecipeError(f"recipe {recipe.get('name')!r} has no 'finetune' section: it is a training recipe (use "
                          "`make train`); fine-tune recipes, e.g. recipes/finetune/moods-tiny.yaml, say where to start")
    validate_sections(recipe)  # a typo in any section fails before the starting model loads
    source = ft.get("from")
    if not source:
        raise RecipeError("finetune.from is missing: the run folder, export folder or .ckpt to start from")
    if not Path(source).exists():
        raise FileNotFoundError(f"finetune.from: {source} does not exist; train it first (e.g. `make train`) or "
                                "point finetune.from at a run or export folder")
    mode = ft.get("llm_head", "keep")
    if mode not in HEAD_MODES:
        raise RecipeError(f"finetune.llm_head must be one of {HEAD_MODES}, got {mode!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    base_recipe = run_recipe_of(source)
    seed = int(recipe.get("seed", base_recipe.get("seed", 0)))
    torch.set_num_threads(max(1, int({**(base_recipe.get("run") or {}), **(recipe.get("run") or {})}.get(
        "threads") or default_threads())))
    model = load_model(source)
    # Seeded after the model is built, so the new LoRA weights and everything after depend on the seed alone.
    L.seed_everything(seed, workers=True, verbose=False)
    if mode == "lora" and not add_lora(model, ft.get("lora")):
        echo("the LLM head already has LoRA adapters; training those")
    resolved = resolve_finetune_recipe(recipe, base_recipe, dict(model.hparams["components"]), str(source))
    save_recipe(resolved, run_dir / "recipe.yaml")
    if resolved.get("generation"):
        model.generation = {**model.generation, **resolved["generation"]}
    summary: dict[str, Any] = {"run_dir": str(run_dir), "from": str(source), "target": ft.get("target",
                                                                                          "emotion_accuracy")}
    # Generating and importing the data, decoding it into a cold cache and the "before" evaluation draw from the
    # global random generators only sometimes (not when the data or the cache already exist, not with --no-eval);
    # undoing their draws makes training start from the same random state either way.
    with preserve_rng():
        root = prepare_dataset(ft, Path(resolved["data"]["root"]), echo)
        # the label set travels with the run (and its exports), so explain reads the new labels without the data
        resolved["eval"]["emotions"] = sorted({s.emotion for s in read_manifest(root) if s.emotion})
        save_recipe(resolved, run_dir / "recipe.yaml")
        dm = data_module(resolved, model, root)
        dm.setup()
        echo(f"data: {root} train={len(dm.dataset('train'))} val={len(dm.dataset('val'))} "
             f"test={len(dm.dataset('test'))}")
        timings: dict[str, float] = {"data": round(time.time() - t0, 1)}
        if evaluate:
            te = time.time()
            echo("evaluating the starting model on the new data ...")
            summary["before"] = _evaluate(model, dm, resolved, run_dir / "eval-before")
            known = flat_metrics(summary["before"]["model"])
            if summary["target"] not in known:  # checked before any training
                raise RecipeError(f"finetune.target {summary['target']!r} is not a metric of the evaluation; "
                                  f"metrics: {', '.join(known)}")
            timings["eval_before"] = round(time.time() - te, 1)

    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    last = None
    for i, stage in enumerate(resolved["stages"]):
        if stage.get("skip"):
            continue
        ts = time.time()
        model.set_stage({"seed": int(resolved["seed"]), **stage})
        # Lightning keeps the modes it finds: the loaded (or just evaluated) model is in eval mode, which would switch
        # off dropout in what trains; train() puts the stage's trainable parts back (frozen ones stay in eval mode).
        model.train()
        dm.batch_size = int(stage.get("batch_size", dm.batch_size))
        n_train = sum(p.numel() for p in model.trainable_parameters())
        echo(f"\n== fine-tune stage {stage['name']} (train: {', '.join(stage.get('train', []))}; "
             f"{n_train:,} trainable parameters, the rest frozen)")
        trainer = make_trainer(resolved, run_dir, stage)
        trainer.fit(model, datamodule=dm)
        last = ckpt_dir / f"{i + 1}-{stage['name']}.ckpt"
        trainer.save_checkpoint(str(last), weights_only=False)  # full state (optimiser too), said explicitly
        timings[stage["name"]] = round(time.time() - ts, 1)
    if last is None:
        raise RecipeError("every stage of the fine-tune recipe is skipped; nothing to train")
    shutil.copyfile(last, run_dir / "model.ckpt")
    summary["checkpoint"] = str(run_dir / "model.ckpt")
    if evaluate:
        te = time.time()
        summary["after"] = _evaluate(model, dm, resolved, run_dir / "eval")
        summary["metrics"] = summary["after"]
        timings["eval_after"] = round(time.time() - te, 1)
        before, after = flat_metrics(summary["before"]["model"]), flat_metrics(summary["after"]["model"])
        summary["gain"] = {k: after[k] - before[k] for k in after if k in before}
        target = summary["target"]
        g = summary["gain"][target]
        summary["improved"] = bool(g < 0 if target in LOWER_IS_BETTER else g > 0)
        (run_dir / "finetune.md").write_text(finetune_report(summary, resolved), encoding="utf-8")
    timings["total"] = round(time.time() - t0, 1)
    summary["timings_s"] = timings
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def before_after_rows(summary: dict[str, Any]) -> list[tuple[str, float | None, float | None, float | None]]:
    """(metric, before, after, gain) with the target metric first."""
    from xemogpt.workflows.ablate_report import flat_metrics

    before, after = flat_metrics(summary["before"]["model"]), flat_metrics(summary["after"]["model"])
    keys = list(after) + [k for k in before if k not in after]
    target = summary.get("target")
    if target in keys:
        keys.remove(target)
        keys.insert(0, target)
    return [(k, before.get(k), after.get(k), summary["gain"].get(k)) for k in keys]


def format_before_after(summary: dict[str, Any], markdown: bool = False) -> str:
    from xemogpt.workflows.ablate_report import metric_label

    def f(v, signed=False):
        return "-" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}")

    rows = before_after_rows(summary)
    if markdown:
        lines = ["| metric | before | after | gain |", "|---|---:|---:|---:|"]
        lines += [f"| {'**' + metric_label(k) + '**' if k == summary.get('target') else metric_label(k)} | {f(b)} | "
                  f"{f(a)} | {f(g, True)} |" for k, b, a, g in rows]
        return "\n".join(lines)
    width = max(len(metric_label(k)) for k, *_ in rows) + 2
    lines = ["metric".ljust(width) + "before".rjust(9) + "after".rjust(9) + "gain".rjust(9)]
    lines += [metric_label(k).ljust(width) + f(b).rjust(9) + f(a).rjust(9) + f(g, True).rjust(9) for k, b, a, g in rows]
    return "\n".join(lines)


def finetune_report(summary: dict[str, Any], resolved: dict[str, Any]) -> str:
    n = summary["after"]["model"].get("n")
    stages = "; ".join(f"{s['name']}: train {', '.join(s.get('train', []))} ({s.get('epochs', s.get('max_steps'))} "
                       f"{'epochs' if 'epochs' in s else 'steps'}, lr {s.get('lr', 1e-3)})"
                       for s in resolved["stages"] if not s.get("skip"))
    head = resolved["model"]["llm_head"]
    head_mode = head.get("train_mode", "full") if isinstance(head, dict) else "full"
    return "\n".join([
        f"# Fine-tune: {resolved.get('name')}", "",
        f"Started from `{summary['from']}`; new data `{resolved['data']['root']}` ({n} test clips). LLM head: "
        f"{head_mode}" + (f" ({json.dumps(head.get('lora'))})" if head_mode == "lora" else "") + f". Stages: {stages}.",
        "", f"Target metric: **{summary.get('target')}** "
        f"({'improved' if summary.get('improved') else 'not improved'}). `lm_loss` is the mean per-token "
        "cross-entropy of the reference descriptions (teacher forcing; lower is better).", "",
        format_before_after(summary, markdown=True), "",
        "Before: `eval-before/`; after: `eval/` (predictions, metrics, report).", ""])
