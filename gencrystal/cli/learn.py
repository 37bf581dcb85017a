"""``gencrystal learn``: the command-line face of :class:`gencrystal.learn.loop.ActiveLearningLoop`."""

from __future__ import annotations

from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    """Run (or resume) the active-learning loop of the composed ``conf/learn.yaml``; print where it went."""
    from gencrystal.learn.loop import ActiveLearningLoop

    loop = ActiveLearningLoop(cfg)
    summary = loop.run()
    print(f"{summary['n_labels']} DFT labels ({summary['dft_level_of_theory']}) in {loop.out}; "
          f"{summary['stop_reason']}")
    if summary["committee"]:
        print(f"committee: {summary['committee']}  (use potential=committee potential.path={summary['committee']} "
              "or a member checkpoint, e.g. potential.path=.../member0.pth.tar)")
    return 0
