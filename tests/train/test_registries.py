"""Imports one way: the registries import no family, a metric lookup needs no dataset, name clashes are ConfigErrors."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from zoo.datasets import get_dataset, list_datasets, register_dataset
from zoo.errors import ConfigError
from zoo.names import NameTable
from zoo.train import Recipe, register_loss, register_metric, register_recipe, register_step_hook
from zoo.train.cli import main
from zoo.train.loop import EpochTotals
from zoo.train.metrics import accuracy, top_k_accuracy
from zoo.train.registries import get_metric, list_metrics

from .conftest import tiny

REPO = Path(__file__).resolve().parents[2]
REGISTRIES = ["zoo/train/registries.py", "zoo/train/recipe.py", "datasets/registry.py", "zoo/names.py"]


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize("path", REGISTRIES)
def test_registries_import_no_family(path):
    """A registry may import only the error, name-table and option helpers of zoo (no model, dataset or recipe)."""
    imported = {module for module in _imported_modules(REPO / path) if module == "zoo" or module.startswith("zoo.")}
    assert imported <= {"zoo.errors", "zoo.names", "zoo.options"}, f"{path} imports {sorted(imported)}"


def test_metric_lookup_works_without_torchaudio():
    """torchaudio made unimportable: importing zoo.train, looking metrics up and --help import no dataset module."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torchaudio"] = None
        from zoo.train.registries import get_metric
        from zoo.train.cli import main
        assert get_metric("accuracy").higher_is_better and get_metric("top5").higher_is_better
        assert not get_metric("mde").higher_is_better
        assert not any(name.startswith("zoo.datasets.") and name != "zoo.datasets.registry" for name in sys.modules)
        try:
            main(["--help"])
        except SystemExit as exit_info:
            assert exit_info.code == 0
        print("ok")
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "sparch-shd" in completed.stdout and completed.stdout.rstrip().endswith("ok")


def test_every_builtin_dataset_is_registered_by_zoo_datasets():
    assert {"shd", "ssc", "heidelberg-digits", "speech-commands", "dvslip", "mvsec"} <= set(list_datasets())
    assert get_dataset("shd").__module__ == "zoo.datasets.shd"
    with pytest.raises(ConfigError, match="unknown dataset 'sdh'; closest: shd"):
        get_dataset("sdh")


def test_name_table_clashes_and_lookups():
    table: NameTable[int] = NameTable("widget")
    table.add("a", 1, "module_one")
    with pytest.raises(ConfigError, match=r"widget 'a' is already registered \(by module_one\); .* from module_two"):
        table.add("a", 2, "module_two")
    assert table.get("a") == 1 and table.names() == ["a"] and "a" in table
    with pytest.raises(ConfigError, match="a widget name must be a non-empty str"):
        table.add("", 3)


@pytest.mark.parametrize(
    ("register", "kind", "name"),
    [
        (lambda: register_dataset("shd")(tiny.blobs), "dataset", "shd"),
        (lambda: register_recipe(Recipe(name=tiny.RECIPE, model=tiny.MODEL, dataset=tiny.DATASET)), "recipe", None),
        (lambda: register_loss("cross_entropy")(lambda output, target, model: output), "loss", "cross_entropy"),
        (lambda: register_metric("top5")(accuracy), "metric", "top5"),
        (lambda: register_step_hook("clamp_parameters")(tiny.record_steps), "step hook", "clamp_parameters"),
    ],
)
def test_every_registry_refuses_a_second_registration(register, kind, name):
    name = name or tiny.RECIPE
    with pytest.raises(ConfigError, match=f"{kind} '{name}' is already registered"):
        register()


def test_show_is_not_a_recipe_name():
    with pytest.raises(ConfigError, match="'show' is a command"):
        register_recipe(Recipe(name="show", model=tiny.MODEL, dataset=tiny.DATASET))


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        ("from zoo.datasets import register_dataset\nregister_dataset('mvsec')(dict)", "dataset 'mvsec' is already"),
        ("from zoo.train import register_metric\nregister_metric('accuracy')(max)", "metric 'accuracy' is already"),
    ],
)
def test_a_plugin_reusing_a_name_is_a_one_line_error(tmp_path, capsys, registration, message):
    plugin = tmp_path / "clash.py"
    plugin.write_text(registration + "\n")
    assert main(["--help", "--plugin", str(plugin)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_python_m_zoo_train_help_with_a_clashing_plugin_exits_2(tmp_path):
    plugin = tmp_path / "clash.py"
    plugin.write_text("from zoo.datasets import register_dataset\nregister_dataset('shd')(dict)\n")
    command = [sys.executable, "-m", "zoo.train", "--help", "--plugin", str(plugin)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert completed.stderr.strip() == (
        f"python -m zoo.train: error: plugin {str(plugin)!r}: ConfigError: dataset 'shd' is already registered "
        f"(by zoo.datasets.shd); registering it again from builtins would replace it: choose another name"
    )


def test_top_k_accuracy_counts_targets_among_the_k_best():
    rows = [[0.1, 0.5, 0.3, 0.2, 0.0, -1.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    logits = torch.tensor(rows)
    target = torch.tensor([4, 5, 0])
    hits, count = get_metric("top5").fn(logits, target)
    ranks = (logits > logits.gather(1, target[:, None])).sum(1)
    assert int(hits) == int((ranks < 5).sum()) == 1 and int(count) == 3
    assert [int(value) for value in top_k_accuracy(1)(logits, target)] == [int(v) for v in accuracy(logits, target)]
    assert "top5" in list_metrics("top*")


def test_metrics_registered_outside_training_are_left_out_of_training_passes():
    """unit_error_rate decodes on the host: training passes skip it, evaluation passes compute it."""
    assert get_metric("accuracy").during_training and not get_metric("unit_error_rate").during_training
    metrics = ("accuracy", "unit_error_rate")
    training = EpochTotals(metrics, torch.device("cpu"), training=True)
    evaluation = EpochTotals(metrics, torch.device("cpu"))
    assert training.names == ("loss", "accuracy") and len(training.metric_fns) == 1
    assert evaluation.names == ("loss", "accuracy", "unit_error_rate") and len(evaluation.metric_fns) == 2
