"""One cue vocabulary and one sentence splitter: evaluation reads descriptions through xemogpt.cues.vocabulary and
never imports the synthetic generator; only xemogpt.cues.splitting defines split_sentences."""

from __future__ import annotations

import ast
from pathlib import Path

from xemogpt.cues.vocabulary import emotion_from_text
from xemogpt.evaluation.evaluate import labels_from_text

SRC = Path(__file__).resolve().parents[1] / "src"
GENERATOR = "xemogpt.data.synth"
# Modules outside the data layer that really generate data with it (clips, or annotations for a benchmark).
GENERATOR_USERS = {
    "xemogpt/cli/data_synth.py",  # `xemogpt data synth`
    "xemogpt/training/run.py",  # a recipe's data.synth
    "xemogpt/training/throughput.py",  # benchmark batches from drawn annotations
    "xemogpt/workflows/finetune.py",  # the fine-tune demo's base data
    "xemogpt/workflows/moods.py",  # renders the mood clips
}


def imported_modules(source: str, module: str) -> set[str]:
    """Every module ``source`` (the file of dotted ``module``) imports, at any depth (functions, branches): both
    ``a.b`` and ``a.b.name`` for ``from a.b import name``, relative imports resolved, and string arguments of
    ``importlib.import_module`` / ``__import__``."""
    package = module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                out.add(str(node.args[0].value))
    return out


def _imports_generator(names: set[str]) -> bool:
    return any(n == GENERATOR or n.startswith(GENERATOR + ".") for n in names)


def _modules(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(SRC)
        yield rel.as_posix(), ".".join(rel.with_suffix("").parts), path.read_text(encoding="utf-8")


def test_import_walker_sees_every_form():
    src = ("import os\n"
           "def f():\n    from xemogpt.data.synth.annotate import draw_annotation\n"
           "def g():\n    if True:\n        from ..data import synth\n"
           "def h():\n    import importlib\n    importlib.import_module('xemogpt.data.synth.face')\n")
    names = imported_modules(src, "xemogpt.evaluation.x")
    assert {"os", "xemogpt.data.synth.annotate", "xemogpt.data.synth", "xemogpt.data.synth.face"} <= names
    assert _imports_generator(imported_modules("from xemogpt.data import synth\n", "xemogpt.evaluation.x"))
    assert not _imports_generator(imported_modules("from xemogpt.data.schema import X\nimport xemogpt.data.synthetic2"
                                                   "\n", "xemogpt.evaluation.x"))


def test_evaluation_never_imports_the_generator():
    files = list(_modules(SRC / "xemogpt" / "evaluation"))
    assert len(files) >= 3
    bad = [rel for rel, mod, text in files if _imports_generator(imported_modules(text, mod))]
    assert bad == [], f"evaluation must read descriptions through xemogpt.cues.vocabulary, not {GENERATOR}: {bad}"


def test_only_generator_users_import_it_outside_the_data_layer():
    users = {rel for rel, mod, text in _modules(SRC / "xemogpt")
             if not rel.startswith("xemogpt/data/") and _imports_generator(imported_modules(text, mod))}
    assert users <= GENERATOR_USERS, (f"{sorted(users - GENERATOR_USERS)} import {GENERATOR}; import the cue "
                                      f"vocabulary from xemogpt.cues.vocabulary (list a module in GENERATOR_USERS "
                                      f"only when it really generates data)")


def test_one_sentence_splitter():
    defs = [f"{rel}:{node.lineno}" for rel, _, text in _modules(SRC)
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "split_sentences"]
    assert len(defs) == 1 and defs[0].startswith("xemogpt/cues/splitting.py:"), defs


def test_conclusions_read_whole_sentences():
    # the splitter reads capitals, so texts are split before they are lower-cased: the sentence about the words is
    # set aside and the face's sadness concludes (lower-casing first would make one sentence, and "happy" win)
    text = "Her face shows sadness. The words sound happy."
    assert emotion_from_text(text) == "sad"
    assert labels_from_text(text, ("happy", "sad")) == ["sad"]
