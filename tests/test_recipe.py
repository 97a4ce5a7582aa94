import pytest
import yaml

from xemogpt import registry
from xemogpt.recipe import RecipeError, apply_overrides, load_recipe, validate_recipe


def test_tiny_recipe_is_valid():
    r = load_recipe("recipes/xemogpt-tiny.yaml")
    validate_recipe(r)
    assert [s["name"] for s in r["stages"]] == ["bridge_pretrain", "align", "instruct"]


def test_overrides_any_key_and_list_index():
    r = load_recipe("recipes/xemogpt-tiny.yaml", ["stages.2.epochs=3", "model.video_bridge.layers=1",
                                                   "data.batch_size=4", "model.video_bridge.tasks=[contrastive]"])
    assert r["stages"][2]["epochs"] == 3
    assert r["model"]["video_bridge"]["layers"] == 1
    assert r["data"]["batch_size"] == 4
    assert r["model"]["video_bridge"]["tasks"] == ["contrastive"]
    with pytest.raises(RecipeError, match="not an index"):
        apply_overrides(r, ["stages.9.epochs=1"])
    with pytest.raises(RecipeError, match="key.sub=value"):
        apply_overrides(r, ["stages"])


def test_extends_merges(tmp_path):
    child = tmp_path / "child.yaml"
    base = str(__import__("pathlib").Path("recipes/xemogpt-tiny.yaml").resolve())
    child.write_text(yaml.safe_dump({"extends": base, "name": "child", "model": {"video_bridge": {"name": "none"}}}))
    r = load_recipe(child)
    assert r["name"] == "child"
    assert r["model"]["video_bridge"]["name"] == "none"
    assert r["model"]["video_bridge"]["layers"] == 2  # merged from the parent (none accepts no layers -> invalid)
    with pytest.raises(registry.RegistryError, match="model.video_bridge.layers"):
        validate_recipe(r)


def test_unknown_keys_are_named():
    with pytest.raises(RecipeError, match="'stages'"):
        load_recipe("recipes/xemogpt-tiny.yaml", ["stagse=1"])
    r = load_recipe("recipes/xemogpt-tiny.yaml", ["model.video_bridge.name=vecbb"])
    with pytest.raises(registry.RegistryError, match="model.video_bridge"):
        validate_recipe(r)
    r = load_recipe("recipes/xemogpt-tiny.yaml", ["stages.0.train=[video_bridg]"])
    with pytest.raises(RecipeError, match="video_bridge"):
        validate_recipe(r)


# --- every section checked up front -------------------------------------------------------------------------------
@pytest.mark.parametrize("override, key, near", [
    ("data.batch_sise=4", "data.batch_sise", "data.batch_size"),
    ("data.synth.sise=64", "data.synth.sise", "data.synth.size"),
    ("trainer.gradient_clip_vall=1.0", "trainer.gradient_clip_vall", "trainer.gradient_clip_val"),
    ("stages.1.lrr=0.1", "stages.1.lrr", "stages.1.lr"),
    ("generation.max_new_token=8", "generation.max_new_token", "generation.max_new_tokens"),
    ("eval.batchsize=8", "eval.batchsize", "eval.batch_size"),
    ("run.treads=1", "run.treads", "run.threads"),
])
def test_a_typo_in_each_section_names_the_key_and_the_closest_one(override, key, near):
    r = load_recipe("recipes/xemogpt-tiny.yaml", [override]) if not override.startswith("stages") else None
    with pytest.raises(RecipeError) as e:
        validate_recipe(r if r is not None else load_recipe("recipes/xemogpt-tiny.yaml", [override]))
    assert f"unknown recipe key {key!r}" in str(e.value) and repr(near) in str(e.value)


def test_a_typo_fails_before_data_generation_or_model_building(tmp_path):
    from xemogpt.training.runner import train_recipe

    r = load_recipe("recipes/xemogpt-tiny.yaml", [f"data.root={tmp_path / 'data'}", "data.synth.n=4",
                                                  "generation.num_beam=2"])
    with pytest.raises(RecipeError, match="'generation.num_beams'"):
        train_recipe(r, tmp_path / "run")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("data.cache=dsk", "'data.cache' must be one of disk, memory, none, got 'dsk'. Did you mean 'disk'?"),
    ("data.frame_sampling=linspac", "'data.frame_sampling' must be one of centre, linspace"),
    ("data.audio_resampler=sox", "'data.audio_resampler' must be one of ffmpeg, soxr"),
    ("eval.split=tst", "'eval.split' must be one of train, val, test, all, got 'tst'"),
    ("data.batch_size=two", "'data.batch_size' expects int, got 'two'"),
    ("data.max_seconds=1e-3", "'data.max_seconds' expects float, got the string '1e-3'"),
    ("eval.baselines=[1]", "'eval.baselines' expects bool"),
    ("trainer.gradient_clip_val=high", "'trainer.gradient_clip_val' expects int | float | None, got 'high'"),
    ("trainer.max_epochs=3", "'trainer.max_epochs' is set by xemogpt itself (epochs are set per stage"),
    ("trainer.logger=false", "'trainer.logger' is set by xemogpt itself"),
    ("generation.eos_token_id=2", "'generation.eos_token_id' is set by xemogpt itself"),
    ("run.log_every_seconds=-5", "'run.log_every_seconds' must be a number of seconds >= 0"),
    ("data=3", "recipe key 'data' must be a mapping"),
])
def test_section_values_are_checked(override, message):
    r = load_recipe("recipes/xemogpt-tiny.yaml", [override])
    with pytest.raises(RecipeError) as e:
        validate_recipe(r)
    assert message in str(e.value)


def test_eval_extractor_is_a_cue_extractor_spec():
    with pytest.raises(registry.RegistryError, match=r"'eval.extractor'.*Did you mean 'offline'"):
        validate_recipe(load_recipe("recipes/xemogpt-tiny.yaml", ["eval.extractor=ofline"]))
    with pytest.raises(registry.RegistryError, match=r"'eval.extractor.retrys'.*'retries'"):
        validate_recipe(load_recipe("recipes/xemogpt-tiny.yaml", ["eval.extractor={name: openai, retrys: 2}"]))
    validate_recipe(load_recipe("recipes/xemogpt-tiny.yaml", ["eval.extractor={name: openai, retries: 2}",
                                                              "run.log_every_seconds=0", "trainer.devices=1"]))


def test_closed_sets_are_the_datamodules_own(tmp_path):
    """The value sets checked up front are exactly what EmoCueDataModule accepts."""
    from xemogpt.data.datamodule import EmoCueDataModule
    from xemogpt.recipe import value_choices

    for dotted, choices in value_choices().items():
        section, _, key = dotted.partition(".")
        if section != "data":
            continue
        for value in choices:
            EmoCueDataModule(str(tmp_path), **{key: value})
        with pytest.raises(ValueError, match=key):
            EmoCueDataModule(str(tmp_path), **{key: "bogus"})


def _ablation_and_finetune_files():
    from pathlib import Path

    return sorted(Path("recipes").glob("ablations/*.yaml")), sorted(Path("recipes").glob("finetune/*.yaml"))


def test_every_shipped_recipe_validates():
    from pathlib import Path

    from xemogpt.recipe import validate_sections
    from xemogpt.workflows.ablate import load_ablation
    from xemogpt.workflows.finetune import resolve_finetune_recipe

    plain = sorted(Path("recipes").glob("*.yaml"))
    ablations, finetunes = _ablation_and_finetune_files()
    assert plain and ablations and finetunes
    for p in plain:
        validate_recipe(load_recipe(p))
    for p in ablations:
        load_ablation(p).validate()  # every cell's recipe
    tiny = load_recipe("recipes/xemogpt-tiny.yaml")
    for p in finetunes:
        ft = load_recipe(p)
        validate_sections(ft)
        validate_recipe(resolve_finetune_recipe(ft, tiny, tiny["model"], "runs/xemogpt-tiny"))


def test_finetune_section_is_checked():
    from xemogpt.recipe import validate_sections

    ft = load_recipe("recipes/finetune/moods-tiny.yaml")
    with pytest.raises(RecipeError, match="'finetune.targt'. Did you mean 'finetune.target'"):
        validate_sections(apply_overrides(ft, ["finetune.targt=lm_loss"]))
    with pytest.raises(RecipeError, match="'finetune.dataset.imports'. Did you mean 'finetune.dataset.import'"):
        validate_sections(apply_overrides(ft, ["finetune.dataset.imports={}"]))
    with pytest.raises(RecipeError, match="'finetune.llm_head' must be one of keep, lora"):
        validate_sections(apply_overrides(ft, ["finetune.llm_head=lore"]))
    with pytest.raises(RecipeError, match="'finetune.dataset.import.lables'. Did you mean 'finetune.dataset.import.l"):
        validate_sections(apply_overrides(ft, ["finetune.dataset.import.lables=x.csv"]))
    with pytest.raises(RecipeError, match="'finetune.dataset.generate.style' must be one of moods, emocue"):
        validate_sections(apply_overrides(ft, ["finetune.dataset.generate.style=mood"]))


def _section_reads() -> set[tuple[str, str]]:
    """(section, key) for every constant key that src/ reads from a recipe section: ``recipe.get("run")`` and the
    names bound to it (``run = recipe.get("run") or {}``), followed through ``.get("k")`` and ``["k"]``."""
    import ast
    from pathlib import Path

    sections = {"data", "trainer", "generation", "eval", "run", "finetune"}
    params = {"data": "data", "ft": "finetune"}
    reads: set[tuple[str, str]] = set()

    def const(node):
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    def access(node):  # X.get("k", ...) or X["k"] -> (X, "k")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and const(node.args[0]):
            return node.func.value, const(node.args[0])
        if isinstance(node, ast.Subscript) and const(node.slice):
            return node.value, const(node.slice)
        return None

    def name(node):  # a variable or an attribute of self, as a key of env
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return f"self.{node.attr}"
        return None

    def path(node, env):
        if name(node):
            return env.get(name(node))
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            return path(node.values[0], env)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and node.args:
            return path(node.args[0], env)
        got = access(node)
        if got is None:
            return None
        receiver, key = got
        if isinstance(receiver, ast.Name) and "recipe" in receiver.id or \
                isinstance(receiver, ast.Name) and receiver.id in ("resolved", "saved"):
            return key if key in sections else None
        outer = path(receiver, env)
        return f"{outer}.{key}" if outer else None

    def bind(nodes, env):  # names (and self attributes) bound to a section
        for n in nodes:
            if not isinstance(n, ast.Assign) or len(n.targets) != 1:
                continue
            target, value = n.targets[0], n.value
            pairs = zip(target.elts, value.elts) if isinstance(target, ast.Tuple) and isinstance(
                value, ast.Tuple) and len(target.elts) == len(value.elts) else [(target, value)]
            for t, v in pairs:
                p = path(v, env) if name(t) else None
                if p:
                    env[name(t)] = p

    for file in Path("src/xemogpt").rglob("*.py"):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        attrs: dict[str, str] = {}  # self.settings = recipe.get("run") in one method, read in another
        bind(ast.walk(tree), attrs)
        attrs = {k: v for k, v in attrs.items() if k.startswith("self.")}
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            # a section handed over as a parameter: ensure_data(data: dict), prepare_dataset(ft: dict)
            env = {**attrs, **{a.arg: params[a.arg] for a in fn.args.args if a.arg in params
                               and a.annotation is not None and "dict" in ast.unparse(a.annotation)}}
            nodes = list(ast.walk(fn))
            bind(nodes, env)
            for n in nodes:
                got = access(n)
                if got:
                    p = path(got[0], env)
                    if p:
                        reads.add((p, got[1]))
    return reads


def test_section_keys_cover_everything_the_code_reads():
    """The accepted keys of each section include every key src/ reads from it (so a new setting cannot be added to
    the code without the recipe check knowing it)."""
    from xemogpt.recipe import section_keys

    keys = section_keys()
    reads = _section_reads()
    checked = {(s, k) for s, k in reads if s in keys}
    assert {("run", "threads"), ("eval", "split"), ("data", "root"), ("data.synth", "n"),
            ("finetune", "from")} <= checked  # the scan finds the reads it must
    missing = sorted(f"{s}.{k}" for s, k in checked if k not in keys[s])
    assert not missing, f"read by src/ but refused by validate_recipe: {missing}"


def test_default_thread_count_follows_omp_num_threads(monkeypatch):
    import os

    from xemogpt.utils.threads import default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    for bad in ("0", "two", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        assert default_threads() == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == (os.cpu_count() or 1)
