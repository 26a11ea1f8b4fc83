"""Self-training on few labels (docs/recipes.md, "Self-training on the unlabelled texts"): the student's training
data from a teacher's predictions on the unlabelled texts.

    rnnpipe export TEACHER.toml --run-dir runs/teacher
    rnnpipe predict runs/teacher/export/model --input OUT/mr/unlabelled.txt > teacher.jsonl
    python benchmarks/self_training.py OUT/mr teacher.jsonl STUDENTS

OUT/mr is a folder `benchmarks/few_labels.py` wrote. STUDENTS/half/train.csv and STUDENTS/all/train.csv get the
labelled sentences and, with the teacher's most probable class as their label, the more confident half of the texts
the teacher puts in each class (half) or every unlabelled text (all). Train a student with the teacher's config and
`data.train` pointed at one of them.
"""

import csv
import json
import sys
from pathlib import Path


def pseudo_labelled(predictions: list[dict], share: float) -> list[tuple[str, str]]:
    """(text, label) for the `share` of each predicted class the teacher is most confident of."""
    kept = []
    for label in sorted({p["label"] for p in predictions}):
        mine = sorted((p for p in predictions if p["label"] == label), key=lambda p: -p["probabilities"][label])
        kept += [(p["text"], label) for p in mine[: int(len(mine) * share)]]
    return kept


def main(few: Path, predictions_file: Path, out: Path) -> None:
    with open(few / "train.csv", newline="", encoding="utf-8") as f:
        labelled = [(row["text"], row["label"]) for row in csv.DictReader(f)]
    predictions = [json.loads(line) for line in predictions_file.read_text(encoding="utf-8").splitlines()]
    texts = (few / "unlabelled.txt").read_text(encoding="utf-8").splitlines()
    if [p["text"] for p in predictions] != texts:
        sys.exit(f"{predictions_file} is not the predictions of {few / 'unlabelled.txt'}, line for line")
    students = {"half": pseudo_labelled(predictions, 0.5), "all": [(p["text"], p["label"]) for p in predictions]}
    for name, pseudo in students.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        rows = labelled + pseudo
        with open(out / name / "train.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        print(f"{out / name / 'train.csv'}: {len(labelled)} labelled and {len(rows) - len(labelled)} pseudo-labelled")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
