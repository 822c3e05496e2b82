"""`yume-env eval`: the learned world measured against the simulator (YumeSim).

- `evaluate(model, probes, config)` -> results dict (`runner`), `write_report` / `write_json` (`report`);
- `EvalConfig` with presets "full" and "quick" (`config`);
- `Probes` (inverse-dynamics model + event classifier, `probes`), trained by `train_probes`
  (`train_probes`, `yume-env eval train-probes`), shipped in `yume_env/assets/eval_models/`;
- `psnr`, `ssim`, `laplacian_energy` (`metrics`); `frechet_distance` (`frechet`) on the features of
  `FrechetFeatures` (`features`), read by `realism`; the task head's "reached" (`task_reached`);
  `TARGETS` (`targets`).
Never imports gymnasium or yume_env.env: the simulator is used directly.
"""

from yume_env.eval.config import EVAL_PRESETS, EvalConfig
from yume_env.eval.features import FrechetFeatures
from yume_env.eval.frechet import frechet_distance
from yume_env.eval.metrics import laplacian_energy, psnr, ssim
from yume_env.eval.probes import Probes, default_probes_path
from yume_env.eval.report import write_json, write_report
from yume_env.eval.runner import evaluate
from yume_env.eval.targets import TARGETS, check_targets
from yume_env.eval.train_probes import PROBE_PRESETS, ProbeTrainConfig, train_probes

__all__ = [
    "EVAL_PRESETS",
    "EvalConfig",
    "psnr",
    "ssim",
    "laplacian_energy",
    "frechet_distance",
    "FrechetFeatures",
    "Probes",
    "default_probes_path",
    "write_json",
    "write_report",
    "evaluate",
    "TARGETS",
    "check_targets",
    "PROBE_PRESETS",
    "ProbeTrainConfig",
    "train_probes",
]
