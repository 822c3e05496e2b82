"""The procedural ground-truth world: an endless city walk rendered by a vectorised raycaster.

`Simulator` (numpy, one camera), `batch.BatchSimulator` (torch, B cameras, CPU or GPU),
`events` (text events), `policies` (action policies for data), `camera` conventions in `pose`.
Plain numpy/torch: never imports gymnasium or the model.
"""

from .events import EVENTS, match_event
from .simulator import SimStep, Simulator

__all__ = ["EVENTS", "match_event", "SimStep", "Simulator"]
