#!/usr/bin/env python
"""Run an experiment: `python scripts/run.py experiment=tiny_cpu logger=none` (see conf/ for the groups).

Thin on purpose: Hydra composes the config, `stairs_decoding.harness` does the work. Multirun sweeps:
`python scripts/run.py -m method=stairs,stairs_cached method.num_draft_tokens=1,4`; on a cluster add
`hydra/launcher=submitit_slurm` (or our GPU preset `hydra/launcher=slurm`).
"""
import os
from pathlib import Path

import hydra
from omegaconf import OmegaConf

# ${repo_root:} in conf/ = this checkout (or $STAIRS_ROOT); registered here so that Hydra's own errors come
# before the heavy imports (torch, transformers).
if not OmegaConf.has_resolver("repo_root"):
    OmegaConf.register_new_resolver(
        "repo_root", lambda: str(Path(os.environ.get("STAIRS_ROOT") or Path(__file__).resolve().parents[1]).resolve()))


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg) -> None:
    from stairs_decoding.harness import cli_main  # heavy imports after Hydra has validated the overrides

    cli_main(cfg)


if __name__ == "__main__":
    main()
