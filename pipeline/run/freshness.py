"""When a stage is up to date: one rule for tokenize, train, evaluate and export.

Each stage's results depend on some config keys, on the stage before it and (tokenize) on the data files. When a
stage finishes, stages.json records those inputs and their digest. Before a stage runs:

- same inputs and its results still there: the stage is skipped, with a line saying so;
- no results yet: it runs;
- different inputs (a config key, a data file, or an earlier stage that was redone): with `overwrite` it runs
  again, replacing its results, and so do the stages after it, whose inputs include its digest; without, it stops
  with an error naming the difference. Results are never reused for inputs they were not made from.

A stage also needs the stage it reads from to be up to date for the same config: evaluating or exporting a
checkpoint trained with other settings stops with an error saying which stage to run first.

Export writes a new version instead of replacing one, so it needs no `overwrite`: it is skipped while the latest
version it wrote is up to date.

Records outlive the code that wrote them. A config key added since a record was made counts as unchanged while it
holds its default in code, which is the behaviour from before the key existed (the rule for adding a key), and a
key since removed is not compared: an upgrade alone outdates no run directory. A stage's record names the results
of the stage before it by that stage's recorded digest, so it stays valid while that stage is.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import glob
import hashlib
import json
import logging
import shlex
from pathlib import Path
from typing import Any

from pipeline.config import Config, config_to_dict, flatten
from pipeline.errors import RunDirError, shorten
from pipeline.run import artifacts
from pipeline.run.rundir import RunDir

logger = logging.getLogger(__name__)

STAGES = ("tokenize", "pretrain", "train", "evaluate", "export")
# Per stage: the stage whose results it reads, and the config sections / keys its results depend on. train reads
# pretrain's results when the config pretrains (`Config.pretrains`, `_before`), tokenize's otherwise.
_DEPENDS = {
    "tokenize": (None, ("task", "seed", "data", "tokenize")),
    "pretrain": ("tokenize", ("model", "pretrain")),
    "train": ("tokenize", ("model", "train")),
    "evaluate": ("train", ("evaluate",)),
    "export": ("train", ("export",)),
}
# Keys that change how a stage runs, not what it produces.
_IGNORED = frozenset({"train.strategy", "train.backup_every_steps", "evaluate.batch_size", "export.version"})
# Keys of a stage's sections that do not reach what that stage makes: pretrain's language models have no pooling
# or classifier head, and one pretrained encoder starts every member of an ensemble.
_NOT_READ = {"pretrain": frozenset({"model.ensemble", "model.pooling", "model.feature_norm"})}


@dataclasses.dataclass(frozen=True)
class Decision:
    run: bool
    reason: str  # one line for the user: why the stage runs again, or why it is skipped


def inputs(rd: RunDir, stage: str, config: Config) -> dict[str, Any]:
    """What `stage`'s results depend on, as {name: value}: config keys, data files' digests, the digest of the
    stage before it."""
    before, sections = _before(stage, config), _DEPENDS[stage][1]
    flat = flatten(config_to_dict(config))
    skipped = _IGNORED | _NOT_READ.get(stage, frozenset())
    found = {key: value for key, value in flat.items() if key.split(".")[0] in sections and key not in skipped}
    if stage == "tokenize":
        found.update(file_inputs(*_data_specs(config)))
        vectors = config.tokenize.pretrained_vectors
        if vectors and Path(vectors).is_file():
            found[f"vectors file {vectors}"] = _sampled_digest(Path(vectors))
    if before is not None:
        found[f"stage {before}"] = digest(inputs(rd, before, config))
    return found


def _before(stage: str, config: Config) -> str | None:
    if stage == "train" and config.pretrains:
        return "pretrain"
    return _DEPENDS[stage][0]


@functools.cache
def _code_defaults() -> dict[str, Any]:
    return _as_recorded(flatten(config_to_dict(Config())))


def differences(old: dict[str, Any], new: dict[str, Any], rd: RunDir | None = None) -> list[str]:
    """What differs between recorded inputs `old` and current inputs `new`, one phrase each (empty: the same); see
    the module docstring for keys added or removed since `old` was recorded. With `rd`, a recorded stage digest
    also matches that stage's record in `rd` (which the callers have checked is up to date)."""
    return [change.phrase for change in _changes(old, new, rd)]


@dataclasses.dataclass(frozen=True)
class _Change:
    phrase: str
    setting: str = ""  # the `--set` that gives back what the record was made with; "" where no setting can


def _changes(old: dict[str, Any], new: dict[str, Any], rd: RunDir | None) -> list[_Change]:
    records = _records(rd) if rd is not None else {}
    defaults = _code_defaults()
    old, new = _as_recorded(old), _as_recorded(new)  # as stages.json holds them (a tuple is a list there)
    changes = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key.startswith("stage "):
            before = records.get(key.removeprefix("stage "))
            if before is not None and old.get(key) == before["digest"]:
                continue
            changes.append(_Change(f"the inputs of {key.removeprefix('stage ')} changed"))
        elif key.startswith(("file ", "vectors file ")):
            kind, path = ("data file", key.removeprefix("file ")) if key.startswith("file ") else \
                ("vectors file", key.removeprefix("vectors file "))  # fmt: skip
            what = "is new" if key not in old else "is gone" if key not in new else "changed"
            changes.append(_Change(f"{kind} {shorten(path, 80)} {what}"))
        elif key not in new or (key not in old and key in defaults and new[key] == defaults[key]):
            continue  # a config key removed since, or added since and at its default
        else:
            then = old[key] if key in old else defaults.get(key)
            before = shorten(repr(old[key]), 60) if key in old else "not recorded"
            if key not in old and key in defaults:  # added since the record: the run behaved as its default did
                before = f"{shorten(repr(defaults[key]), 60)} (not recorded, the default then)"
            setting = _setting(key, then) if key in defaults else ""  # config keys only: `--set` takes no other
            changes.append(_Change(f"{key}: {before} -> {shorten(repr(new.get(key)), 60)}", setting))
    return changes


def _setting(key: str, value: Any) -> str:
    """`key=value` as `--set` reads it back (pipeline.config: a TOML value, a plain string, a list as a,b)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)  # TOML's spelling of the number too
    elif isinstance(value, str) and value:
        text = value
    elif isinstance(value, list) and value and all(isinstance(v, str) and "," not in v for v in value):
        text = ",".join(value)
    else:
        return ""
    return shlex.quote(f"{key}={text}")


def _as_recorded(values: Any) -> Any:
    return json.loads(json.dumps(values, default=str))


def digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def decide(rd: RunDir, stage: str, config: Config, has_results: bool, overwrite: bool) -> Decision:
    """Whether `stage` must run (see the module docstring); raises RunDirError when its results exist, were made
    from other inputs and `overwrite` is not given."""
    require_up_to_date(rd, _before(stage, config), config)
    record = _records(rd).get(stage)
    current = inputs(rd, stage, config)
    changes = _changes(record["inputs"], current, rd) if record else [_Change("results of unknown origin")]
    if not changes and has_results:
        return Decision(False, f"{stage}: up to date, kept")
    if not has_results:
        return Decision(True, "")
    changed = _joined([change.phrase for change in changes])
    if not overwrite:
        raise RunDirError(f"{stage}: {changed} since its results in {rd.path} were made; use --overwrite to "
                          f"redo {stage} and the stages after it, or choose another --run-dir"
                          f"{_as_they_are(changes)}")  # fmt: skip
    return Decision(True, f"{stage}: {changed}; redoing it")


def require_up_to_date(rd: RunDir, stage: str | None, config: Config) -> None:
    """A RunDirError unless `stage` (None: nothing) has finished with the inputs `config` gives it."""
    if stage is None:
        return
    # The earliest outdated stage is the one to name: it is where the difference is, and what to run first.
    require_up_to_date(rd, _before(stage, config), config)
    record = _records(rd).get(stage)
    current = inputs(rd, stage, config)
    if record is None:
        raise RunDirError(f"{stage} has not finished in {rd.path}: run `rnnpipe {stage}` first")
    changes = _changes(record["inputs"], current, rd)
    if changes:
        phrases = _joined([change.phrase for change in changes])
        raise RunDirError(f"{stage} in {rd.path} is not up to date with this config ({phrases}): run "
                          f"`rnnpipe {stage}` first{_as_they_are(changes)}")  # fmt: skip


# The most `--set`s a refusal offers: a recipe's change moves a few keys together (pretraining's defaults are four);
# beyond this the run was made with another config, not an older recipe.
HINT_SETTINGS = 6


def _as_they_are(changes: list[_Change]) -> str:
    """The end of a refusal: the `--set`s that use the results as they were made, when settings alone differ (at
    most HINT_SETTINGS). After an upgrade that changed a recipe default, that is what keeps a run usable untouched."""
    settings = [change.setting for change in changes]
    if not all(settings) or len(settings) > HINT_SETTINGS:
        return ""
    return ", or use it as it is: " + " ".join(f"--set {setting}" for setting in settings)


def require_inputs(rd: RunDir, stage: str, config: Config) -> None:
    """A RunDirError unless the stage `stage` reads from has finished with the inputs `config` gives it."""
    require_up_to_date(rd, _before(stage, config), config)


def check_resumable(rd: RunDir, stage: str, config: Config, recorded: dict | None, overwrite: bool) -> bool:
    """For a stage that resumes (train): whether the unfinished attempt whose inputs were `recorded` may be resumed;
    False means start over (`overwrite` given). Raises RunDirError for different inputs without `overwrite`."""
    require_up_to_date(rd, _before(stage, config), config)
    if not recorded:
        return False
    changes = differences(recorded, inputs(rd, stage, config), rd)
    if not changes:
        return True
    if not overwrite:
        raise RunDirError(f"{stage}: an unfinished {stage} in {rd.path} was started with other inputs "
                          f"({_joined(changes)}); use --overwrite to start it over, or choose another "
                          f"--run-dir")  # fmt: skip
    return False


def record(rd: RunDir, stage: str, config: Config, **extra: Any) -> None:
    """`stage` finished with the current inputs; a stage after it that recorded other inputs is now outdated."""
    records = _records(rd)
    values = inputs(rd, stage, config)
    finished = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    records[stage] = {"digest": digest(values), "inputs": values, "finished": finished, **extra}
    artifacts.write_json(rd.stages, records)


def recorded(rd: RunDir, stage: str) -> dict | None:
    return _records(rd).get(stage)


def describe_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """`differences` as one phrase: the first `limit` of them, and how many more."""
    return _joined(differences(old, new), limit)


def _joined(changes: list[str], limit: int = 3) -> str:
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return "; ".join(changes[:limit]) + more if changes else "inputs changed"


def _records(rd: RunDir) -> dict:
    return artifacts.read_json(rd.stages) if rd.stages.exists() else {}


def _data_specs(config: Config) -> list[str]:
    """The paths the data section reads (a TFDS dataset: its manual_dir)."""
    data = config.data
    return [data.manual_dir] if data.source == "tfds" else [data.train, data.validation, data.test, data.unlabelled]


def file_inputs(*specs: str) -> dict[str, str]:
    """The files that paths, folders or globs name, as inputs ({"file <path>": "size:sha256"}) that `differences`
    names: a file, a folder's files (recursively), a glob's."""
    files = []
    for spec in filter(None, specs):
        path = Path(spec)
        if path.is_dir():
            files += [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        elif path.is_file():
            files.append(path)
        else:
            files += [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
    return {f"file {path}": _file_digest(path) for path in files}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return _content_digest(str(path), stat.st_size, stat.st_mtime_ns)


def _sampled_digest(path: Path, samples: int = 64, block: int = 1 << 16) -> str:
    """ "size:sampled-sha256" of a file's size and `samples` evenly spaced blocks, the first and last among them:
    for a vectors file of gigabytes, which a full digest would read at every stage, a fingerprint that another file,
    an edit of its length or a truncation changes (an edit in place between the blocks would not)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for k in range(samples):
            f.seek(max(0, (size - block) * k // max(samples - 1, 1)))
            h.update(f.read(block))
    return f"{size}:sampled-{h.hexdigest()}"


@functools.lru_cache(maxsize=4096)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """Cached by size and modification time: one stage asks for the same files' digests several times."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{size}:{h.hexdigest()}"
