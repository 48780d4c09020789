#!/usr/bin/env python
"""Run an experiment: `python scripts/run.py experiment=tiny_cpu logger=none` (see conf/ for the groups).

Thin on purpose: Hydra composes the config, `stairs_decoding.harness` does the work. Multirun sweeps:
`python scripts/run.py -m method=stairs,stairs_cached method.num_draft_tokens=1,4 sweep=null`; on a cluster add
`hydra/launcher=submitit_slurm` (or our GPU preset `hydra/launcher=slurm`). Continue a run: `resume=<run dir>`.
"""
import os
import sys
from pathlib import Path

import hydra

# ${repo_root:} in conf/ = this checkout (or $STAIRS_ROOT), also when the package is installed elsewhere.
# stairs_decoding.config is light (omegaconf and Hydra only): the command line is checked before torch loads.
os.environ.setdefault("STAIRS_ROOT", str(Path(__file__).resolve().parents[1]))
from stairs_decoding import cli  # noqa: E402
from stairs_decoding.config import preflight, register_resolvers  # noqa: E402

register_resolvers()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg) -> None:
    from stairs_decoding.harness import cli_main  # heavy imports after the command line has been checked

    cli_main(cfg)


if __name__ == "__main__":
    sys.argv[1:] = cli.checked(lambda: preflight(sys.argv[1:]))
    main()
