"""Stage 4: a SavedModel for TensorFlow Serving, taking raw strings, at <run_dir>/export/<name>/<version>/, and with
`export.formats` including "litert", a LiteRT model for devices in <version>/litert/ (pipeline.export.litert).

The task provides the SavedModel's module and signatures, and the LiteRT signatures (pipeline/tasks/). The model
is rebuilt without XLA in the recurrent kernels (TF Serving's CPU build does not compile XLA clusters by default)
and given the trained weights.
`assets.extra/tf_serving_warmup_requests` holds a few requests for TF Serving's warm-up. The export is written to a
temporary folder and renamed, so TF Serving, which polls the model folder, never sees half a version; an existing
version is never replaced, and an export that is up to date (pipeline.run.freshness) is not written again.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import keras
import tensorflow as tf

from pipeline import tasks
from pipeline.config import Config
from pipeline.data.text import Vocabulary
from pipeline.errors import PipelineError, RunDirError, shorten
from pipeline.export import warmup
from pipeline.run import artifacts, freshness, rundir
from pipeline.run.rundir import RunDir
from pipeline.training.calibration import calibrated
from pipeline.training.model import checkpoint_weights, load_checkpoint

logger = logging.getLogger(__name__)

LITERT_FOLDER = "litert"  # inside a version folder, beside the SavedModel (TF Serving ignores it)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: Path
    skipped: bool = False

    def summary(self) -> str:
        return f"export: up to date, kept {self.path}" if self.skipped else f"exported: {self.path}"


def run(config: Config, run_dir) -> ExportResult:
    with rundir.opened(run_dir, config) as rd:
        base = rd.exports / config.export.name
        _remove_leftovers(base)
        previous = freshness.recorded(rd, "export")
        latest = rd.resolve(previous["path"]) if previous else None
        decision = freshness.decide(rd, "export", config, has_results=bool(latest and latest.exists()), overwrite=True)
        if not decision.run and not config.export.version:
            return ExportResult(latest, skipped=True)
        if not rd.best_model.exists():
            raise RunDirError(f"nothing to export: {rd.best_model} not found; run `rnnpipe train` on this run first")
        version = config.export.version or next_version(base)
        target = base / str(version)
        if target.exists():
            raise RunDirError(f"export {target} exists; versions are never overwritten (set export.version to a new "
                              f"number or leave it 0 for the next one)")  # fmt: skip
        task = tasks.get(config.task)
        vocab = Vocabulary.load(rd.require(rd.vocabulary, "tokenize"))
        labels = rd.read_labels()
        model = served_model(config, rd, vocab, labels)
        formats = config.export.formats
        with artifacts.staged_path(target) as tmp:
            tmp.mkdir()
            if "saved_model" in formats:
                _write_saved_model(task.serving(model, config, vocab, labels), tmp, config)
            if "litert" in formats:
                _write_litert(model, config, vocab, labels, tmp / LITERT_FOLDER)
        freshness.record(rd, "export", config, path=rd.relative(target))
        logger.info("exported %s", target)
        return ExportResult(target)


def served_model(config: Config, rd: RunDir, vocab: Vocabulary, labels: tuple[str, ...]) -> keras.Model:
    """The model an export serves: the best checkpoint's weights in a model built without training-only rates (an
    export never trains; with them its layers would draw unused dropout masks on every request) and without XLA
    (TF Serving's CPU build does not compile it), its logits divided by the run's calibration temperature if it has
    one (the probabilities evaluate reports as calibrated)."""
    trained = load_checkpoint(rd.best_model)
    serving_config = dataclasses.replace(config.model, dropout=0.0, recurrent_dropout=0.0,
                                         recurrent_weight_dropout=0.0)  # fmt: skip
    model = tasks.get(config.task).build_model(serving_config, vocab, labels, seed=config.seed, jit_compile=False)
    model.set_weights(checkpoint_weights(trained, model))
    if rd.calibration.exists():
        model = calibrated(model, artifacts.read_json(rd.calibration)["temperature"])
    return model


def _write_saved_model(serving, folder: Path, config: Config) -> None:
    tf.saved_model.save(serving.module, str(folder), signatures=dict(serving.signatures))
    if config.export.warmup_requests and serving.warmup:
        (folder / "assets.extra").mkdir()
        records = [warmup.prediction_log(config.export.name, name, inputs) for name, inputs in serving.warmup]
        warmup.write_warmup_file(folder / "assets.extra" / "tf_serving_warmup_requests", records)


def _write_litert(model, config: Config, vocab, labels, folder: Path) -> None:
    from pipeline.export import litert  # TensorFlow Lite's converter loads only when asked for

    try:
        litert.export_litert(
            model,
            config.task,
            vocab,
            labels,
            folder,
            quantize=config.export.litert_quantize,
            max_length=config.export.max_length,
        )
    except ImportError as error:
        raise PipelineError(f"export.formats: {error}") from None
    except (litert.LiteRTConversionError, NotImplementedError) as error:
        raise PipelineError(f"export.formats: no LiteRT export of this model: {shorten(str(error), 400)}") from None


def next_version(base: Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
    return max(versions, default=0) + 1


def _remove_leftovers(base: Path) -> None:
    """Temporary folders of an export that was killed before its rename (this process holds the run directory's
    lock, so no other export is writing them)."""
    if base.exists():
        for leftover in base.glob(".*.tmp"):
            logger.info("removing %s, left by an interrupted export", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
