"""The README's training section names only recipes, models, fields, options, metrics and hooks that exist."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

import zoo
from zoo.train import Recipe, get_recipe, list_recipes
from zoo.train.config import OVERRIDE_GROUPS
from zoo.train.registries import list_metrics, list_step_hooks

README = Path(__file__).resolve().parents[2] / "README.md"
FIELDS = {field.name for field in dataclasses.fields(Recipe)}


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Training and evaluation")
    return text[start : text.index("\n## ", start + 1)]


def _commands() -> list[list[str]]:
    """Every ``python -m zoo.train`` / ``torchrun ... -m zoo.train`` command of the section's code blocks, as words
    after ``zoo.train`` (continuation lines joined, comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", _section(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "zoo.train" in words:
                commands.append(words[words.index("zoo.train") + 1 :])
    return commands


def _placeholder(word: str) -> bool:
    return word.isupper()


def test_the_section_has_training_commands():
    assert len(_commands()) >= 10


@pytest.mark.parametrize("words", _commands(), ids=lambda words: " ".join(words)[:60])
def test_training_commands_name_registered_things(words):
    if words[:1] == ["show"]:
        words = words[1:]
    options_with_values = {"--data", "--out", "--model", "--resume", "--seed", "--device", "--workers", "--epochs"}
    positional, model, index = [], None, 0
    while index < len(words):
        word = words[index]
        if word in options_with_values and index + 1 < len(words):
            if word == "--model":
                model = words[index + 1]
            index += 2
            continue
        if not word.startswith("-"):
            positional.append(word)
        index += 1
    if not positional or positional[0] in ("--help",):
        return
    recipe_name, overrides = positional[0], positional[1:]
    recipe = None
    if not _placeholder(recipe_name):
        assert recipe_name in list_recipes(), f"README names recipe {recipe_name!r}"
        recipe = get_recipe(recipe_name)
    if model is not None and not _placeholder(model):
        assert model in zoo.list_models(), f"README names model {model!r}"
    model = model if model is not None and not _placeholder(model) else (recipe.model if recipe else None)
    for override in overrides:
        key, _, value = override.partition("=")
        group, dot, option = key.partition(".")
        if not dot:
            assert key in FIELDS, f"README override {override!r}: no recipe field {key!r}"
        else:
            assert group in OVERRIDE_GROUPS, f"README override {override!r}"
            if group == "model" and model is not None:
                assert option in zoo.model_info(model).config, f"README: {model} has no option {option!r}"


def test_metric_and_hook_names_in_the_section_are_registered():
    section = _section()
    metrics = {name for names in re.findall(r"metrics=([\w,]+)", section) for name in names.split(",")}
    assert "top5" in metrics and metrics <= set(list_metrics()), sorted(metrics - set(list_metrics()))
    hooks = set(re.findall(r"after_step\.([\w-]+)=", section)) | set(re.findall(r'`\{"([\w-]+)": \{\}\}`', section))
    assert hooks and hooks <= set(list_step_hooks()), sorted(hooks - set(list_step_hooks()))
