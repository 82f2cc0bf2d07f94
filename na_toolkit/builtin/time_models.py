"""Built-in time models: onnxruntime and torch (measured), roofline (analytic, from a hardware model) and
learned (fitted from a device profile). The classes import their runtimes lazily, so registering them is
cheap."""

from __future__ import annotations

import na_toolkit
from na_toolkit.timemodels.learned import LearnedTimeModel
from na_toolkit.timemodels.onnxruntime_tm import OnnxRuntimeTimeModel
from na_toolkit.timemodels.roofline import RooflineTimeModel
from na_toolkit.timemodels.torch_tm import TorchTimeModel

TIME_MODELS = (OnnxRuntimeTimeModel, TorchTimeModel, RooflineTimeModel, LearnedTimeModel)


@na_toolkit.hookimpl
def na_register_time_models(registry):
    for cls in TIME_MODELS:
        registry.add(cls)
