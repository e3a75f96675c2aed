"""The one cache of what is compiled for a model: every ``tf.function`` that
:mod:`~transformer.inference.decoding` (the decoding loops), :mod:`~transformer.inference.attention_maps`
and :mod:`~transformer.inference.attention_vectors` (the teacher-forced passes) trace for it, the
padded shapes its XLA loops ran, and whether it was given to ``decoding.precompile`` (a server).

The entries of a model live as long as the model: the cache holds it weakly, and each function
reaches it through a weak reference (``make`` gets one), so the cache never keeps a model alive.
"""

import weakref


class ModelCache:
    """What is compiled for one model (see the module docstring)."""

    def __init__(self):
        self.functions = {}  # key -> compiled function
        self.xla_shapes = set()  # (strategy, *options, batch, width) run through an XLA loop
        self.precompiled = False  # given to decoding.precompile(): decode() runs the XLA loops


_caches = weakref.WeakKeyDictionary()  # model -> ModelCache (the only registry of compiled functions)


def of(model):
    """The :class:`ModelCache` of ``model`` (an empty one the first time)."""
    return _caches.setdefault(model, ModelCache())


def function(model, key, make):
    """The function cached for ``model`` under ``key``; ``make(model_ref)`` builds it the first
    time, given a weak reference to the model (the cache must not keep the model alive)."""
    functions = of(model).functions
    if key not in functions:
        functions[key] = make(weakref.ref(model))
    return functions[key]
