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

from zoo.errors import ConfigError

__all__ = ["load_plugin"]


def load_plugin(plugin: str) -> ModuleType:
    """Import `plugin` (a module name or a ``.py`` path) and return the module.

    Raises:
        ConfigError: the module or file is missing, or importing it fails (e.g. it registers a name that is
            already registered); the message names the plugin and the error, the original error is chained.
    """
    if plugin.endswith(".py") or "/" in plugin or "\\" in plugin:
        return _load_file(Path(plugin))
    if importlib.util.find_spec(plugin.partition(".")[0]) is None:
        raise ConfigError(f"plugin module {plugin!r} not found")
    try:
        return importlib.import_module(plugin)
    except Exception as error:
        raise ConfigError(f"plugin {plugin!r}: {type(error).__name__}: {error}") from error


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
    except BaseException as error:
        del sys.modules[name]
        if isinstance(error, Exception):
            raise ConfigError(f"plugin {str(path)!r}: {type(error).__name__}: {error}") from error
        raise
    return module
