"""Imports go one way: every module imports on its own (no cycle), and the registry imports no model family.

Starting one interpreter per module would cost a torch import each; instead one child process imports the
third-party libraries once and forks a fresh child per jellyzoo module (two at a time), so each module is imported
first, alone, into a process that holds no jellyzoo module yet.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = {"zoo": ROOT / "zoo", "zoo.kernels": ROOT / "kernels", "zoo.datasets": ROOT / "datasets"}
THIRD_PARTY = ("numpy", "torch", "torchvision", "torchaudio", "spikingjelly.activation_based", "h5py", "safetensors")


def module_names() -> list[str]:
    """Every importable jellyzoo module under its installed name (``kernels/spike.py`` -> ``zoo.kernels.spike``)."""
    names = []
    for package, folder in SOURCE_FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).with_suffix("")
            if path.name.startswith(".") or relative.parts[-1] == "__main__":
                continue
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            if package == "zoo" and parts[:1] in (("kernels",), ("datasets",)):
                continue
            names.append(".".join((package, *parts)))
    return names


CHILD = textwrap.dedent(
    """
    import importlib, multiprocessing, sys, traceback, types
    for library in {third_party!r}:
        try:
            importlib.import_module(library)
        except ImportError:
            pass
    assert not any(name == "zoo" or name.startswith("zoo.") for name in sys.modules)

    def import_alone(name):
        try:
            importlib.import_module(name)
        except BaseException:
            return name, traceback.format_exc(limit=-3)
        return name, None

    def registry_without_package_init():
        # `zoo/__init__` imports the families on purpose; the registry's own imports must not
        package = types.ModuleType("zoo")
        package.__path__ = [{zoo_folder!r}]
        sys.modules["zoo"] = package
        importlib.import_module("zoo.registry")
        return sorted(name for name in sys.modules if name.startswith(("zoo.models", "zoo.train", "zoo.datasets")))

    if __name__ == "__main__":
        context = multiprocessing.get_context("fork")
        with context.Pool(2, maxtasksperchild=1) as pool:
            results = pool.map(import_alone, {names!r}, chunksize=1)
            families = pool.apply(registry_without_package_init)
        failed = [f"{{name}}:\\n{{error}}" for name, error in results if error]
        print("\\n".join(failed) or "all imported")
        print("registry imported:", families)
        sys.exit(1 if failed or families else 0)
    """
)


def test_every_module_imports_alone_and_the_registry_imports_no_family(tmp_path: Path) -> None:
    names = module_names()
    assert {"zoo.registry", "zoo.options", "zoo.weights", "zoo.kernels", "zoo.datasets"} <= set(names)
    script = tmp_path / "import_each.py"
    script.write_text(CHILD.format(third_party=THIRD_PARTY, zoo_folder=str(ROOT / "zoo"), names=names))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registry imported: []" in result.stdout
