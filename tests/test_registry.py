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
