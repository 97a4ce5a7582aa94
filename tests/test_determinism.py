"""A seed means the same numbers: ablation cells and fine-tunes reproduce bit for bit in one process, whether their
data was generated in the same run or before it and whatever ran before them; every checkpoint load is
``weights_only``; sampled evaluations depend on the seed alone."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_overrides

pytestmark = pytest.mark.slow
TINY = Path("recipes/xemogpt-tiny.yaml").resolve()
# The bridge stage (it draws permutations and frame masks) and instruction tuning; the align stage is left out for
# time (its feature cache is exercised by test_workflows_e2e).
QUICK = ["eval.baselines=false", "data.synth={n: 14, seed: 5, size: 64, workers: 1}", "stages.1.skip=true"]


def _quiet(_msg: str) -> None:
    pass


def _digest(run_dir: Path) -> str:
    from xemogpt.checkpointing.files import read_checkpoint
    from xemogpt.training.callbacks import state_digest

    return state_digest(read_checkpoint(run_dir / "model.ckpt")["state_dict"])


def _shake_random_state(k: int) -> None:
    """Leave the global generators somewhere (a different place for each ``k``) a reproducible run must not care
    about."""
    torch.manual_seed(12345 + k)
    np.random.seed(99 + k)
    random.seed(7 + k)


def _ablation(folder: Path, data_root: Path, cells: dict[str, dict]):
    from xemogpt.workflows.ablate import load_ablation

    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": "det", "base": str(TINY), "seeds": [0], "out": str(folder / "out"), "axes": {"video_bridge": cells}}
    (folder / "det.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_ablation(folder / "det.yaml", tiny_overrides(data_root) + QUICK)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """One ablation cell trained twice in this process from different global random states: first generating its
    data (and filling the decoded and feature caches), then on the data and caches the first run left."""
    from xemogpt.workflows.ablate import run_ablation

    tmp = tmp_path_factory.mktemp("determinism")
    data = tmp / "data"  # no manifest yet: the first run generates it (data.synth)
    runs = []
    for k, name in enumerate(("first", "second")):
        ab = _ablation(tmp / name, data, {"vecb": {}})
        _shake_random_state(k)
        assert len(run_ablation(ab, echo=_quiet, report=False)["trained"]) == 1
        runs.append(ab.run_dir(ab.cells()[0], 0))
    return runs[0], runs[1], data


def test_an_ablation_cell_reproduces_bit_for_bit(cells):
    a, b, data = cells
    assert (data / "manifest.jsonl").exists()
    assert _digest(a) == _digest(b)
    for stage in ("1-bridge_pretrain", "2-instruct"):
        from xemogpt.checkpointing.files import read_checkpoint
        from xemogpt.training.callbacks import state_digest

        sa, sb = (state_digest(read_checkpoint(r / "checkpoints" / f"{stage}.ckpt")["state_dict"]) for r in (a, b))
        assert sa == sb, stage
    ma = json.loads((a / "summary.json").read_text())["metrics"]
    mb = json.loads((b / "summary.json").read_text())["metrics"]
    assert ma == mb
    assert (a / "eval" / "predictions.jsonl").read_text() == (b / "eval" / "predictions.jsonl").read_text()
    # the training losses of every logged step agree too
    for stage in ("bridge_pretrain", "instruct"):
        assert (a / "logs" / stage / "metrics.csv").read_text() == (b / "logs" / stage / "metrics.csv").read_text()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def weights_only_notices():
    """Collects (into the list it yields) what Lightning logs as "`weights_only` was not set" and any warning that
    mentions ``weights_only``.

    Lightning's ``lightning.pytorch`` logger does not propagate to the root when it was imported without root
    handlers, so the catcher sits on the package loggers themselves as well as on the root.
    """
    catcher = _Records()
    loggers = [logging.getLogger(n) for n in ("", "lightning", "lightning.pytorch", "lightning.fabric")]
    notices: list[str] = []
    for lg in loggers:
        lg.addHandler(catcher)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield notices
    finally:
        for lg in loggers:
            lg.removeHandler(catcher)
        notices += [m for m in catcher.messages if "weights_only" in m]
        notices += [str(w.message) for w in caught if "weights_only" in str(w.message)]


def _finetune_recipe(folder: Path, base_run: Path) -> dict:
    return {
        "name": "ft-det",
        "finetune": {"from": str(base_run),
                     "dataset": {"generate": {"style": "moods", "out": str(folder / "raw"), "n": 15, "seed": 2,
                                              "size": 64, "workers": 1},
                                 "import": {"format": "generic", "labels": str(folder / "raw" / "labels.csv"),
                                            "media": [str(folder / "raw")]}},
                     "target": "lm_loss", "llm_head": "lora",
                     # dropout > 0: training draws from the random generators at every step
                     "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]}},
        "data": {"root": str(folder / "moods"), "batch_size": 4, "num_workers": 0},
        "stages": [{"name": "finetune", "train": ["video_projector", "audio_projector", "llm_head"],
                    "losses": ["lm"], "epochs": 2, "lr": 1.0e-2}],
        "trainer": {"enable_progress_bar": False, "check_val_every_n_epoch": 1},
        "eval": {"baselines": False},
    }


@pytest.fixture(scope="module")
def finetunes(cells, tmp_path_factory):
    """The same fine-tune twice from the ablation cell's run: the first generates and imports its data (and decodes
    it into a cold cache) and evaluates before and after; the second reuses all of it, runs with ``--no-eval`` and
    is evaluated afterwards by ``xemogpt eval``. Everything is watched for ``weights_only`` notices."""
    from xemogpt.cli import main
    from xemogpt.workflows.finetune import finetune

    folder = tmp_path_factory.mktemp("ft-det")
    recipe = _finetune_recipe(folder, cells[0])
    runs, generated, notices = [], [], []
    for k in range(2):
        _shake_random_state(k)
        generated.append(not (folder / "moods" / "manifest.jsonl").exists())
        with weights_only_notices() as seen:
            runs.append((finetune(recipe, folder / f"run{k}", evaluate=k == 0, echo=_quiet), folder / f"run{k}"))
            if k == 1:
                assert main(["eval", "--checkpoint", str(folder / "run1"), "--no-baselines"]) == 0
        notices += seen
    return {"runs": runs, "generated": generated, "folder": folder, "notices": notices}


def test_a_finetune_reproduces_bit_for_bit_whether_it_generated_its_data_or_evaluated(finetunes, capsys):
    capsys.readouterr()
    (first, a), (second, b) = finetunes["runs"]
    assert finetunes["generated"] == [True, False]
    assert _digest(a) == _digest(b)
    assert (a / "logs/finetune/metrics.csv").read_text() == (b / "logs/finetune/metrics.csv").read_text()
    # the second run's own evaluation (xemogpt eval) gives the first run's "after" numbers and descriptions
    after = dict(first["after"]["model"])
    after.pop("lm_loss")
    assert json.loads((b / "eval-test" / "metrics.json").read_text())["model"] == after
    assert (a / "eval/predictions.jsonl").read_text() == (b / "eval-test/predictions.jsonl").read_text()
    assert first["improved"]  # and it learned something: the comparison is not between two untouched models


def test_finetune_eval_and_explain_give_no_weights_only_notice(finetunes, capsys):
    from xemogpt.cli import main

    assert finetunes["notices"] == []  # two fine-tunes and an eval (see the fixture)
    clip = next((finetunes["folder"] / "raw" / "clips").glob("*.mp4"))
    with weights_only_notices() as seen:
        assert main(["explain", str(clip), "--checkpoint", str(finetunes["runs"][0][1]), "--json"]) == 0
    capsys.readouterr()
    assert seen == []


def test_sampled_evaluation_depends_on_the_seed_alone(finetunes):
    from xemogpt.evaluation.evaluate import generate_predictions
    from xemogpt.models.loading import load_model
    from xemogpt.recipe import load_recipe
    from xemogpt.training.run import data_module

    run = finetunes["runs"][0][1]
    model = load_model(run)
    dm = data_module(load_recipe(run / "recipe.yaml"), model, load_recipe(run / "recipe.yaml")["data"]["root"])
    gen = {"do_sample": True, "temperature": 1.5, "top_p": 1.0, "max_new_tokens": 12}

    def texts(seed: int) -> list[str]:
        return [r["prediction"] for r in generate_predictions(model, dm, "test", 4, seed=seed, **gen)]

    _shake_random_state(2)
    before = torch.get_rng_state()
    first = texts(3)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random stream is untouched
    torch.rand(5)
    assert texts(3) == first
    assert texts(4) != first  # sampling really draws: another seed writes other tokens
