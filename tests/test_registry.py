import json

import pytest

from xemogpt import registry
from xemogpt.cli import main


def test_every_kind_has_builtins():
    kinds = {e.kind for e in registry.entries()}
    for kind in ("video_encoder", "audio_encoder", "text_encoder", "video_bridge", "audio_bridge", "projector",
                 "llm_head", "cue_extractor", "metric", "data_adapter"):
        assert kind in kinds, kind


def test_unknown_name_names_key_and_suggests():
    with pytest.raises(registry.RegistryError) as e:
        registry.build("video_bridge", {"name": "vecbb"}, "model.video_bridge", input_dim=8)
    msg = str(e.value)
    assert "model.video_bridge" in msg and "'vecb'" in msg and "xemogpt zoo" in msg


def test_unknown_argument_names_key_and_suggests():
    with pytest.raises(registry.RegistryError) as e:
        registry.resolve("video_bridge", {"name": "vecb", "layrs": 2}, "model.video_bridge",
                         provided=("input_dim", "text_dim"))
    assert "model.video_bridge.layrs" in str(e.value) and "'layers'" in str(e.value)


def test_missing_argument_and_bad_spec():
    with pytest.raises(registry.RegistryError, match="needs argument"):
        registry.resolve("projector", {"name": "linear"}, "model.video_projector")
    with pytest.raises(registry.RegistryError, match="has no 'name'"):
        registry.resolve("projector", {"input_dim": 3}, "model.video_projector")
    with pytest.raises(registry.RegistryError, match="unknown component kind"):
        registry.get("video_bridges", "vecb")


def test_wired_argument_clash():
    with pytest.raises(registry.RegistryError, match="wires in"):
        registry.build("projector", {"name": "linear", "input_dim": 4}, "model.p", input_dim=4, output_dim=8)


def test_duplicate_registration_rejected():
    class A:
        pass

    registry.register("metric", "__test_dup")(A)
    with pytest.raises(registry.RegistryError, match="already registered"):
        registry.register("metric", "__test_dup")(type("B", (), {}))


def test_zoo_cli_lists_by_kind(capsys):
    assert main(["zoo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "vecb" in [e["name"] for e in out["video_bridge"]]
    assert "aecb" in [e["name"] for e in out["audio_bridge"]]
    assert main(["zoo", "--kind", "projector"]) == 0
    text = capsys.readouterr().out
    assert "projector:" in text and "linear" in text


def builtin_entries():
    """The project's components (not the ones tests register)."""
    return [e for e in registry.entries() if e.obj.__module__.startswith("xemogpt.")]


def test_names_are_hyphenated_and_old_spellings_are_aliases():
    import re

    for e in builtin_entries():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", e.name), (e.kind, e.name)
    adapters = registry.names("data_adapter")
    assert {"emer-v2", "emer-v1", "mer2024-ov", "mer-discrete"} <= set(adapters)
    assert not any("_" in n for n in adapters)  # listings show canonical names only
    for old, new in (("emer_v2", "emer-v2"), ("emer_v1", "emer-v1"), ("mer2024_ov", "mer2024-ov"),
                     ("mer_discrete", "mer-discrete")):
        assert registry.get("data_adapter", old) is registry.get("data_adapter", new)
        assert registry.canonical("data_adapter", old) == new
    assert registry.get("metric", "ovmer_wheel").name == "ovmer-wheel"
    assert registry.get("metric", "weighted_f1").name == "weighted-f1"
    assert "emer_v2" in registry.names("data_adapter", aliases=True)


def test_close_match_suggests_the_canonical_name_of_an_alias():
    with pytest.raises(registry.RegistryError) as e:
        registry.get("data_adapter", "emer_v3", key="finetune.dataset.import.format")
    assert "Did you mean 'emer-v2'" in str(e.value) and "finetune.dataset.import.format" in str(e.value)
    assert "emer_v2" not in str(e.value).split("Registered")[1]  # the listing names canonical names


def test_an_alias_cannot_take_another_components_name():
    registry.register("metric", "__test-alias-a", aliases=("__test_alias_a",))(type("A", (), {}))
    with pytest.raises(registry.RegistryError, match="already registered"):
        registry.register("metric", "__test-alias-b", aliases=("__test-alias-a",))(type("B", (), {}))
    with pytest.raises(registry.RegistryError, match="already registered"):
        registry.register("metric", "__test_alias_a")(type("C", (), {}))


def test_argument_values_are_type_checked_against_the_constructor():
    wired = ("input_dim", "text_dim")
    cases = [({"layers": "two"}, "'model.video_bridge.layers' expects int, got 'two'"),
             ({"mask_ratio": "1e-3"}, "'model.video_bridge.mask_ratio' expects float, got the string '1e-3' (write"),
             ({"tasks": "contrastive"}, "'model.video_bridge.tasks' expects list[str] | tuple[str, ...], got"),
             ({"dim": 2.5}, "'model.video_bridge.dim' expects int | None, got 2.5"),
             ({"final_norm": "yes"}, "'model.video_bridge.final_norm' expects bool, got the string 'yes'")]
    for args, message in cases:
        with pytest.raises(registry.RegistryError) as e:
            registry.resolve("video_bridge", {"name": "vecb", **args}, "model.video_bridge", provided=wired)
        assert message in str(e.value) and "(video_bridge 'vecb')" in str(e.value)
    registry.resolve("video_bridge", {"name": "vecb", "layers": 2, "mask_ratio": 0.5, "tasks": ["contrastive"],
                                      "dim": None, "final_norm": True}, "model.video_bridge", provided=wired)
    # a path may be a string, an int may stand for a float
    registry.resolve("text_encoder", {"name": "sentence-transformers", "path": "checkpoints/LaBSE"}, "model.t")
    with pytest.raises(registry.RegistryError, match="expects"):
        registry.resolve("text_encoder", {"name": "sentence-transformers", "path": 3}, "model.t")


def test_every_component_describes_itself_in_one_complete_line():
    """`xemogpt zoo` prints each docstring's first line: a whole sentence, not one cut mid-way."""
    import inspect

    for e in builtin_entries():
        first_paragraph = (inspect.getdoc(e.obj) or "").split("\n\n")[0]
        assert "\n" not in first_paragraph, f"{e.kind} {e.name}: the summary runs over {first_paragraph!r}"
        assert e.description == first_paragraph and e.description.endswith("."), (e.kind, e.name)
        assert "``" not in e.description and ":mod:" not in e.description, (e.kind, e.name)


def test_zoo_shows_aliases(capsys):
    assert main(["zoo", "--kind", "data_adapter"]) == 0
    text = capsys.readouterr().out
    assert "emer-v2" in text and "(also: emer_v2)" in text
    assert main(["zoo", "--kind", "metric", "--json"]) == 0
    metrics = {m["name"]: m for m in json.loads(capsys.readouterr().out)["metric"]}
    assert metrics["ovmer-wheel"]["aliases"] == ["ovmer_wheel"]
