"""Proposed changes to exchange/engine.py, applied by monkeypatching for a measurement only.

``bench/engine.py --experiment NAME`` applies them to measure their effect; the figure that
``make bench`` prints always comes from the unpatched code. Once a change lands in
exchange/, its entry here is obsolete and can be deleted.
"""

from __future__ import annotations

# name → [(dotted target, replacement)]. Empty: the last proposals (one UPDATE … FROM unnest
# for order states, batch-wide capacity reads for allocation, market data published first)
# have landed in exchange/.
EXPERIMENTS: dict[str, list] = {}


def apply(names: list[str]) -> None:
    import importlib

    for name in names:
        for target, function in EXPERIMENTS[name]:
            module_name, _, attribute = target.rpartition(".")
            try:
                owner = importlib.import_module(module_name)
            except ImportError:  # a class inside a module
                module_name, _, class_name = module_name.rpartition(".")
                owner = getattr(importlib.import_module(module_name), class_name)
            setattr(owner, attribute, function)
