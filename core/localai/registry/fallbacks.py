"""The core's ``trylast`` implementations of the per-model hooks: call the model object's method.

Registered on every :class:`localai.registry.plugins.PluginManager`, so a plugin whose model class follows
:class:`localai.protocol.Model` needs no dispatch code. Plugin hooks run first (pluggy calls
``trylast`` implementations last, and ``firstresult`` hooks stop at the first non-``None``
answer), so a plugin can still take over any hook for its own models.

Adding a hook with the same treatment is one line: ``new_hook = delegating(hookspecs.new_hook)``
(the spec's first parameter must be ``model``; the method has the hook's name unless given).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from localai import hookimpl, hookspecs
from localai.protocol import call_method


def delegating(spec: Callable[..., Any], method: str | None = None, *, required: bool = True) -> Callable[..., Any]:
    """A ``trylast`` hook implementation of ``spec`` that calls ``model.<method>(*other args)``.

    ``required=False``: a model without the method is left alone (``close`` is optional).
    The wrapper takes the spec's signature (``functools.wraps``), which is what pluggy validates
    and calls it with.
    """
    hook = spec.__name__
    params = list(inspect.signature(spec).parameters)
    if not params or params[0] != "model":
        raise TypeError(f"hookspec {hook} does not take the model as its first argument")
    name = method or hook

    @functools.wraps(spec)
    def fallback(model: Any, *args: Any) -> Any:
        if not required and not callable(getattr(model, name, None)):
            return None
        return call_method(model, hook, name, *args)

    fallback.__doc__ = f"Fallback for {hook}: ``model.{name}(...)``."
    return hookimpl(trylast=True)(fallback)


generate = delegating(hookspecs.generate)
embed = delegating(hookspecs.embed)
tokenize = delegating(hookspecs.tokenize)
detokenize = delegating(hookspecs.detokenize)
count_prompt_tokens = delegating(hookspecs.count_prompt_tokens)
generate_image = delegating(hookspecs.generate_image)
unload_model = delegating(hookspecs.unload_model, "close", required=False)
