"""Research workflows built on training and evaluation: ablations with a report, fine-tuning on a new dataset,
explaining one clip.

| module | holds |
|---|---|
| :mod:`.ablate` | ablation files (base recipe, axes, seeds), cells, resumable runs (``run_ablation``) |
| :mod:`.ablate_report`, :mod:`.ablate_plots` | report: mean ± 95% interval tables, differences, PNG plots |
| :mod:`.stats` | Student-t intervals over seeds, paired / Welch differences |
| :mod:`.finetune` | fine-tune recipes: import data, evaluate before, train chosen parts (LoRA), evaluate after |
| :mod:`.moods` | a differently labelled synthetic dataset (five moods) for fine-tuning demos |
| :mod:`.explain`, :mod:`.attention`, :mod:`.html` | one clip -> emotion, cues, reasoning, attention, HTML page |

Command line: ``xemogpt ablate FILE``, ``xemogpt finetune --recipe FILE``, ``xemogpt explain CLIP``. Submodules are
imported on use (they pull in torch and Lightning), so ``import xemogpt.workflows`` stays cheap.
"""
