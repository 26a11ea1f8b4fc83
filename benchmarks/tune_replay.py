"""Replays a finished `rnnpipe tune` study under the search's current pruner (pipeline.stages.tune._pruner): for each
trial, with the trials finished before it as they were recorded, the epoch after which the pruner would stop it
(docs/recipes.md, "A search on MR"). A trial pruned in the study is known only up to the epoch it was stopped at.

    python benchmarks/tune_replay.py runs/mr_lstm/tune [--study tune]
"""

import argparse
from pathlib import Path

import optuna

from pipeline.stages import tune


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path, help="the study's folder, <run_dir>/tune")
    parser.add_argument("--study", default=tune.DEFAULT_STUDY)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=args.study, storage=tune._storage(args.folder, ""))
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    print("trial  state     value   epochs  pruned after epoch (current pruner)")
    for trial in trials:
        if not trial.intermediate_values:
            continue
        replay = optuna.create_study(pruner=tune._pruner())
        for other in trials:
            if other.number < trial.number and other.state in tune.FINISHED:
                copy = replay.ask()
                for step, value in sorted(other.intermediate_values.items()):
                    copy.report(value, step)
                complete = other.state == optuna.trial.TrialState.COMPLETE
                replay.tell(copy, other.value if complete else None, state=other.state)
        mine, stopped = replay.ask(), "-"
        for step, value in sorted(trial.intermediate_values.items()):
            mine.report(value, step)
            if mine.should_prune():
                stopped = str(step + 1)
                break
        value = f"{trial.value:.4f}" if trial.value is not None else "-"
        print(
            f"{trial.number:>5}  {trial.state.name.lower():<8} {value:>7}  {len(trial.intermediate_values):>6}  "
            f"{stopped}"
        )


if __name__ == "__main__":
    main()
