"""Importing user modules that register recipes, models, datasets, losses or metrics (``--plugin``).

A plugin is a module name (``my_lab.recipes``, importable from the current directory or the installed
packages) or the path of a ``.py`` file. Each is imported once per process; under torchrun every process
receives the same ``--plugin`` arguments, so registrations exist everywhere.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from zoo.train.errors import ConfigError

__all__ = ["load_plugin"]


def load_plugin(plugin: str) -> ModuleType:
    """Import `plugin` (a module name or a ``.py`` path) and return the module; `ConfigError` if it is missing."""
    if plugin.endswith(".py") or "/" in plugin or "\\" in plugin:
        return _load_file(Path(plugin))
    try:
        return importlib.import_module(plugin)
    except ModuleNotFoundError as error:
        raise ConfigError(f"plugin module {plugin!r} not found ({error})") from None


def _load_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"plugin file {str(path)!r} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"zoo_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
