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
