"""`rnnpipe`: the command line over the pipeline's stages.

Each command parses its options, loads the config and calls one library function (`pipeline.<stage>.run(config,
run_dir)`); nothing here knows how a stage works. A `PipelineError` (bad config, data, run directory or export) is
printed as one line on stderr with a non-zero exit; `--debug` shows tracebacks and TensorFlow's own logging.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import signal
import sys
import time
from pathlib import Path

import click

from pipeline import __version__

# Plain tuples, for click's choices: importing them keeps `rnnpipe --help` free of TensorFlow.
from pipeline.data.detect import FORMATS as _INIT_FORMATS
from pipeline.errors import PipelineError, describe, shorten
from pipeline.recipes import TASKS as _TASK_NAMES

logger = logging.getLogger("pipeline")


# An error line is read by a person, or grepped from a log: whatever went into it, it stays one line this long.
MAX_ERROR_CHARS = 500


def _one_line(text: str) -> str:
    return shorten(text, MAX_ERROR_CHARS)


def _reader_gone(stream) -> bool:
    """Whether `stream` is a pipe whose reading end is closed (poll reports an error on its writing end)."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's runner), or no poll here
        return False


class _Group(click.Group):
    """Turns user errors into one line on stderr; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as e:
            if ctx.meta.get("rnnpipe.debug"):
                raise
            click.echo(f"error: {_one_line(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            stage = ctx.invoked_subcommand in ("tokenize", "pretrain", "train", "evaluate", "export", "run", "cv",
                                               "tune")  # fmt: skip
            click.echo("interrupted; progress is saved, run the same command again to resume" if stage
                       else "interrupted", err=True)  # fmt: skip
            sys.stdout.flush()
            sys.stderr.flush()
            # Everything is saved; skip interpreter shutdown, which can wait on tf.data worker threads that the
            # interrupt left mid-batch.
            os._exit(130)
        except click.UsageError as e:
            # click's default shows the whole usage block; one line naming the problem reads better in logs.
            command = e.ctx.command_path if e.ctx else "rnnpipe"
            click.echo(f"error: {_one_line(e.format_message())} (see '{command} --help')", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug, or an input we failed to anticipate: still one line, details on request
            if isinstance(e, BrokenPipeError) and _reader_gone(sys.stdout):
                # `rnnpipe predict ... | head`: the output's reader has gone. Stop quietly, as shell tools do, with
                # SIGPIPE's status; stdout goes to /dev/null, where the interpreter's last flush can go.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                ctx.exit(128 + signal.SIGPIPE)
            if ctx.meta.get("rnnpipe.debug"):
                raise
            click.echo(f"error: {_one_line(describe(e))} (run with --debug for the traceback)", err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="rnnpipe")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own log output.")
@click.option("-v", "--verbose", is_flag=True, help="Log what each stage is doing.")
@click.pass_context
def main(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Train, evaluate and export recurrent text models (sentiment, next-character) from a TOML config.

    \b
    Typical use:
      rnnpipe run configs/shakespeare_char_lstm.toml --set data.manual_dir=../shared/data/tiny_shakespeare
      rnnpipe generate runs/shakespeare_char_lstm/export/model --prompt "ROMEO:"
      rnnpipe init reviews.csv -o reviews.toml && rnnpipe run reviews.toml
      rnnpipe predict runs/reviews/export/model "A wonderful film."

    Stages write into a run directory (default: runs/<config name>) and read what earlier stages left there, so
    each one can be re-run on its own: tokenize -> train -> evaluate -> export.
    """
    ctx.meta["rnnpipe.debug"] = debug
    # TensorFlow reads this when it is first imported. Level 3 keeps only FATAL lines: its ERROR level carries
    # notices such as "oneDNN supports DT_INT8 only on platforms with AVX-512" (tensorflow/core/util/util.cc,
    # DataTypeUnsupportedWarning: logged once per process when oneDNN meets a data type this CPU has no
    # instructions for; nothing is wrong). Every failure of ours reaches the user as a Python exception, printed by
    # _Group above; --debug shows TensorFlow's log in full.
    # TensorFlow itself is imported by the commands that need it (_import_tensorflow_quietly): printing a config,
    # writing one with init, and --help stay fast.
    if debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ start-up banners (oneDNN, CPU features) ignore TF_CPP_MIN_LOG_LEVEL; they would bury the
    one-line messages this CLI promises, so its native stderr is muted while it loads (with --debug, not)."""
    if "tensorflow" in sys.modules or click.get_current_context().meta.get("rnnpipe.debug"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            # Import only: running an op here would initialise the runtime before a MultiWorkerMirroredStrategy
            # can configure it.
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _config_options(overwrite: bool = True, keys: dict[str, str] | None = None, lock: bool = True):
    """CONFIG, --run-dir, --set (and --overwrite), shared by the stage commands: the command gets the loaded config
    and the run directory, opened and locked for the whole command (without `lock`: its path, for a command whose
    processes share the folder and lock what they write themselves). `keys` maps a command's own options to the
    config keys they set (after --set, so the option wins)."""

    def decorate(func):
        @click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
        @click.option(
            "--run-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Run directory to write to and read from.  [default: runs/<CONFIG name>]",
        )
        @_set_option
        @functools.wraps(func)
        def wrapper(config_path: Path, run_dir: Path | None, overrides: tuple[str, ...], **kwargs):
            from pipeline.config import load_config
            from pipeline.run import preflight, rundir

            for option, key in (keys or {}).items():
                value = kwargs.pop(option)
                if value is not None and value != ():
                    overrides += (f"{key}={','.join(value) if isinstance(value, tuple) else value}",)
            config = load_config(config_path, overrides)
            # Before the run directory is created or locked; `data`: evaluate's --data.
            preflight.check(config, func.__name__, kwargs.get("data") or "")
            _import_tensorflow_quietly()
            path = run_dir or rundir.default_run_dir(config_path)
            if not lock:
                return func(config=config, run_dir=path, **kwargs)
            with rundir.opened(path, config) as rd:
                return func(config=config, run_dir=rd, **kwargs)

        if overwrite:
            wrapper = click.option(
                "--overwrite",
                is_flag=True,
                help="Redo stages whose config or data changed since their results were made, replacing those "
                "results (without it, such a stage stops with an error).",
            )(wrapper)
        return wrapper

    return decorate


_set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set train.epochs=3 --set data.manual_dir=../data (repeatable).",
)


@main.command()
@_config_options()
def tokenize(config, run_dir, overwrite):
    """Build the vocabulary (and class names) from the training split."""
    from pipeline.stages import tokenize as stage

    click.echo(stage.run(config, run_dir, overwrite=overwrite, progress=_ProgressBar()).summary())


class _ProgressBar:
    """A progress bar on stderr for long work (a word vectors file of gigabytes, an evaluation of tens of thousands
    of texts), drawn from the first report before the end that comes `delay` seconds or more after the first report:
    work that reports only its end, or ends sooner, was short and draws nothing."""

    def __init__(self, label: str = "reading word vectors", delay: float = 0.0):
        self.label, self.delay, self.bar, self.first = label, delay, None, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            now = time.monotonic()
            self.first = self.first or now
            if done >= total or now - self.first < self.delay:
                return
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_eta=True)
            self.bar.render_progress()
        self.bar.update(min(done, total) - self.bar.pos)
        if done >= total:
            self.bar.render_finish()


# Seconds into an evaluation after which it draws a progress bar.
EVALUATE_BAR_AFTER = 2.0


def _evaluate_progress() -> _ProgressBar:
    # A bar for evaluations that take a while (25,000 reviews take most of a minute), none for a second's.
    return _ProgressBar("evaluating", delay=EVALUATE_BAR_AFTER)


@main.command()
@_config_options()
def pretrain(config, run_dir, overwrite):
    """Pretrain the sentiment model's embedding and recurrent layers as forward and backward word language models on
    unlabelled texts (data.unlabelled, or data.unlabelled_split for TFDS); train then starts from them.

    Resumes an interrupted run; pretrain.max_seconds is its time budget. Writes <run_dir>/pretrain/."""
    from pipeline.stages import pretrain as stage

    click.echo(stage.run(config, run_dir, overwrite=overwrite, on_progress=click.echo).summary())


@main.command()
@_config_options()
def train(config, run_dir, overwrite):
    """Train the model, resuming an interrupted run; keeps the best checkpoint on train.monitor.

    With model.ensemble = K > 1 the K members are trained one after the other (in <run_dir>/members/) and then
    joined into one checkpoint that averages their probabilities."""
    from pipeline.stages import train as stage

    click.echo(stage.run(config, run_dir, overwrite=overwrite, on_progress=click.echo).summary())


@main.command()
@_config_options()
@click.option(
    "--data",
    metavar="PATH",
    help="Score the trained model on this file instead (labelled examples, or a text for next_char), read as the "
    "config reads data.train; writes <run_dir>/evaluations/<name>/.",
)
def evaluate(config, run_dir, overwrite, data):
    """Evaluate the best checkpoint on `evaluate.split`; writes metrics.json (and, for sentiment, predictions.csv and
    figures).

    With --data, on another file (new labelled examples, another corpus): into its own folder,
    <run_dir>/evaluations/<file name>/, leaving the run's own evaluation as it is."""
    from pipeline.stages import evaluate as stage

    result = stage.run(config, run_dir, overwrite=overwrite, data=data or "", progress=_evaluate_progress())
    click.echo(result.summary())


@main.command()
@_config_options(overwrite=False, keys={"formats": "export.formats"})
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["saved_model", "litert"]),
    help="What to write (repeatable; sets export.formats): a SavedModel for TF Serving, a LiteRT .tflite for devices.",
)
def export(config, run_dir):
    """Write a SavedModel for TensorFlow Serving to <run_dir>/export/<export.name>/<version>/ (with --format
    litert, a LiteRT model in <version>/litert/).

    A new version is written when the model or the export settings changed since the last one; versions are never
    replaced."""
    from pipeline.stages import export as stage

    click.echo(stage.run(config, run_dir).summary())


@main.command()
@_config_options()
def run(config, run_dir, overwrite):
    """Run every stage: tokenize -> (pretrain, with unlabelled texts) -> train -> evaluate -> export (each skipped
    while up to date)."""
    from pipeline.stages import evaluate, export, pretrain, tokenize, train

    click.echo(tokenize.run(config, run_dir, overwrite=overwrite, progress=_ProgressBar()).summary())
    if config.pretrains:
        click.echo(pretrain.run(config, run_dir, overwrite=overwrite, on_progress=click.echo).summary())
    click.echo(train.run(config, run_dir, overwrite=overwrite, on_progress=click.echo).summary())
    click.echo(evaluate.run(config, run_dir, overwrite=overwrite, progress=_evaluate_progress()).summary())
    click.echo(export.run(config, run_dir).summary())


@main.command()
@_config_options()
@click.option("--folds", type=int, default=10, show_default=True, help="Number of stratified folds.")
def cv(config, run_dir, overwrite, folds):
    """K-fold cross-validation: train and score each fold (sentiment, local files).

    Fold k trains on the other folds and is scored on fold k, in <run_dir>/cv<K>/fold<k>/ (a run directory of its
    own); the summary (each fold's accuracy, macro F1 and balanced accuracy, their mean and standard deviation, and
    the same figures of every example's out-of-fold prediction) is printed and written to
    <run_dir>/cv<K>/summary.json, beside figures (folds.png, confusion_matrix.png, reliability_diagram.png). Run
    again after an interruption, it continues where it stopped."""
    from pipeline.stages import cv as stage

    def on_fold(k, metrics):
        click.echo(f"fold {k + 1}/{folds}: accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
                   f"({metrics['examples']:,} examples, {metrics['seconds']:.0f} s)")  # fmt: skip

    result = stage.run(config, run_dir, folds, overwrite=overwrite, on_fold=on_fold, on_progress=click.echo)
    click.echo("\n".join(result.lines()))


@main.command()
@_config_options(overwrite=False, keys={"trials": "tune.trials", "timeout": "tune.timeout"}, lock=False)
@click.option("--trials", type=click.IntRange(min=1), metavar="N",
              help="Trials to finish in the study, counting those finished before (sets tune.trials).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0), metavar="S",
              help="Start no trial after S seconds (sets tune.timeout; 0: no limit).")  # fmt: skip
@click.option("--storage", default="", metavar="URL",
              help="Where the study lives: an SQLAlchemy URL (postgresql://user@host/db) shared by workers on "
              "several machines, or a journal file.  [default: <run_dir>/tune/study.journal]")  # fmt: skip
@click.option("--study", "study_name", default="tune", show_default=True, help="The study's name in its storage.")
def tune(config, run_dir, storage, study_name):
    """Search the config's [tune] space with Optuna, scoring each trial on the validation split.

    Each trial trains the config with sampled values in <run_dir>/tune/trials/<n>/ (a run directory: evaluate or
    export it like any other); a trial whose validation loss lags and has stopped improving is pruned after an
    epoch. At the end, and on Ctrl-C: the table of trials, <run_dir>/tune/best.toml (the best trial's config, for
    `rnnpipe run`) and figures.
    Run again, it continues the study up to --trials; several processes (with --storage, on several machines) can
    work on one study at once."""
    from pipeline.stages import tune as stage

    result = stage.run(config, run_dir, storage=storage, study_name=study_name, on_event=click.echo)
    click.echo("\n".join(result.lines()))


@main.command("config")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
@_set_option
def show_config(config_path: Path, overrides: tuple[str, ...]) -> None:
    """Print CONFIG fully resolved, as TOML: every key, defaults included, each with what it means.

    The output is itself a config file to start from: rnnpipe config configs/mr_lstm.toml > mine.toml"""
    from pipeline.config import load_config, to_toml

    click.echo(to_toml(load_config(config_path, overrides), comments=True), nl=False)


@main.command()
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.File("rb"),
    help="Read texts from this UTF-8 file, one per line ('-' for stdin), or with --text-column from a CSV or TSV.",
)
@click.option("--text-column", metavar="C", help="Read --input as a CSV (a TSV when its name ends in .tsv) with a "
              "header row, and classify its column C.")  # fmt: skip
@click.option("--tsv-quoting", type=click.Choice(["quoted", "none"]), help="How the TSV is written: quoted as "
              "pandas and the csv module write it, or GLUE-style.  [default: told from the file]")  # fmt: skip
@click.option("--top", type=click.IntRange(min=1), metavar="K",
              help="List only the K most probable classes of each text, most probable first.  [default: every class "
              "up to 20, the 20 most probable beyond]")  # fmt: skip
def predict(export_dir: Path, texts: tuple[str, ...], input_file, text_column: str | None, tsv_quoting: str | None,
            top: int | None) -> None:  # fmt: skip
    """Classify TEXTS with an exported sentiment model; one JSON line per text, printed as each batch is done:
    the text, its label and the classes' probabilities (see --top).

    EXPORT_DIR is a version folder (export/model/3) or the model folder above it (the highest version is used,
    as TF Serving would).
    """
    import itertools
    import json

    _import_tensorflow_quietly()
    from pipeline.clients import predict as stage

    if not texts and input_file is None:
        raise click.UsageError("give TEXT arguments or --input FILE")
    if text_column is not None and input_file is None:
        raise click.UsageError("--text-column reads a column of --input FILE; give one")
    lines = texts
    if input_file is not None:
        name = "stdin" if input_file.name in ("-", "<stdin>") else input_file.name
        lines = itertools.chain(texts, stage.input_texts(input_file, name, text_column, tsv_quoting or "auto"))
    for result in stage.predict(export_dir, lines, top=top):
        click.echo(json.dumps(result, ensure_ascii=False))


@main.command()
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.option("--prompt", help="Text to continue.")
@click.option(
    "--input",
    "input_file",
    type=click.File("rb"),
    help="Continue each line of this UTF-8 file ('-' for stdin) instead; one JSON line per sample.",
)
@click.option("--length", default=200, show_default=True, type=int,
              help="Characters to generate, from 0 to the export's max_length.")  # fmt: skip
@click.option("--temperature", default=1.0, show_default=True, type=float,
              help="Below 1, likelier characters; above 1, more varied ones (> 0).")  # fmt: skip
@click.option("--top-k", default=0, show_default=True, type=int,
              help="Sample from the K most probable characters only (0: all).")  # fmt: skip
@click.option("--top-p", default=1.0, show_default=True, type=float,
              help="Sample from the fewest most probable characters that hold probability P (1: all).")  # fmt: skip
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(min=1), help="Texts per prompt.")
@click.option("--seed", type=int, help="Seed for reproducible sampling, 0 to 2**63 - 1 (without it, each run differs).")
def generate(export_dir: Path, prompt: str | None, input_file, length: int, temperature: float, top_k: int,
             top_p: float, num_samples: int, seed: int | None) -> None:  # fmt: skip
    """Continue --prompt TEXT (or each line of --input FILE) with an exported next-character model.

    Sampling runs inside the SavedModel. With --prompt the output is the prompt and its continuation (on a
    terminal it appears as it is generated); with --input, one JSON line {"prompt", "sample", "text"} per sample,
    "text" being the continuation. EXPORT_DIR is a version folder or the model folder above it, or a LiteRT
    export (its litert/ folder or model.tflite), run by the LiteRT interpreter."""
    import json

    _import_tensorflow_quietly()
    from pipeline.clients import generate as stage
    from pipeline.sampling import Sampling

    if (prompt is None) == (input_file is None):
        raise click.UsageError("give --prompt TEXT or --input FILE (one of the two)")
    sampling = Sampling(length, temperature, top_k, top_p, seed)
    sampling.check()
    source = "--prompt" if input_file is None else input_file.name
    prompts = [prompt] if input_file is None else stage.read_prompts(input_file, source)
    generator = stage.open_generator(export_dir)
    generator.check(sampling, prompts, source)
    if input_file is not None:
        for batch in generator.batches(prompts, sampling, num_samples):
            for texts in batch.pieces:
                for (p, s), text in zip(batch.rows, texts):
                    record = {"prompt": stage.display_text(prompts[p]), "sample": s, "text": text}
                    click.echo(json.dumps(record, ensure_ascii=False))
        return

    def header(sample: int) -> None:
        if num_samples > 1:
            click.echo(f"--- sample {sample + 1} of {num_samples} ---")

    shown = stage.display_text(prompt)
    stream = sys.stdout.isatty()
    for batch in generator.batches(prompts, sampling, num_samples, stream=stream):
        # The first row of each batch is printed as it is generated, the others once their batch is done.
        texts = [""] * len(batch.rows)
        header(batch.rows[0][1])
        click.echo(shown, nl=False)
        for pieces in batch.pieces:
            click.echo(pieces[0], nl=False)
            texts = [text + piece for text, piece in zip(texts, pieces)]
        click.echo()
        for (_, s), text in zip(batch.rows[1:], texts[1:]):
            header(s)
            click.echo(shown + text)


@main.command("init")
@click.argument("data", nargs=-1, required=True, metavar="DATA")
@click.option(
    "--task",
    type=click.Choice(_TASK_NAMES),
    help="The task.  [default: sentiment for labelled data, next_char for one plain text]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the config to this new file (never replaced).  [default: print it]",
)
@click.option("--text-column", metavar="NAME", help="CSV/TSV: the column holding the text.")
@click.option("--label-column", metavar="NAME", help="CSV/TSV: the column holding the class.")
@click.option("--format", "fmt", type=click.Choice(_INIT_FORMATS), help="Read DATA in this format instead of "
              "telling it from the path.")  # fmt: skip
@click.option(
    "--encoding", metavar="NAME", help="The files' encoding, instead of detecting UTF-8 / Windows-1252 / UTF-16."
)
@click.option("--tsv-quoting", type=click.Choice(["quoted", "none"]), help="TSV: quoted as pandas and the csv "
              "module write it, or unquoted as GLUE's.  [default: told from the file]")  # fmt: skip
@click.option("--label-case", type=click.Choice(["error", "fold", "keep"]), default="error", show_default=True,
              help="Labels that differ only by case: an error, one class (lower case), or kept apart.")  # fmt: skip
@click.option("--validation", metavar="PATH", help="Validation data in DATA's format.  [default: held out]")
@click.option("--test", metavar="PATH", help="Test data in DATA's format.  [default: 10% held out]")
@click.option("--vectors", metavar="PATH", help="sentiment: a word vectors file (GloVe, word2vec, fastText) to "
              "start the words from (tokenize.pretrained_vectors).")  # fmt: skip
@click.option("--unlabelled", metavar="PATH", help="sentiment: texts without labels to pretrain on "
              "(data.unlabelled): a text file, a CSV/TSV or a folder of .txt files (aclImdb/train/unsup).")  # fmt: skip
def init(data: tuple[str, ...], task, output: Path | None, text_column, label_column, fmt, encoding, tsv_quoting,
         label_case, validation, test, vectors, unlabelled) -> None:  # fmt: skip
    """Inspect DATA and write a starter config for it; asks nothing.

    \b
      rnnpipe init data/reviews.csv -o reviews.toml && rnnpipe run reviews.toml
      rnnpipe init 'data/mr/rt-polarity.*' -o mr.toml     (one file per class: a quoted glob, or their folder)

    DATA is a CSV or TSV file with a header row, a folder holding one sub-folder per class (or train/ and test/
    folders holding those), one file per class with one example per line, or a plain text (task next_char).
    Prints what it found (format, columns, classes and their counts, size, encoding) and writes the task and the
    data section; every other setting is the task's default (`rnnpipe config FILE` shows them all). What the data
    cannot tell, such as which of several columns is the label, is an error naming the option that settles it.
    """
    from pipeline.data import detect
    from pipeline.stages import init as stage

    if output is not None:
        stage.check_new(output)
    findings = detect.inspect(data, task=task, fmt=fmt, text_column=text_column, label_column=label_column,
                             encoding=encoding, validation=validation, test=test, tsv_quoting=tsv_quoting,
                             label_case=label_case)  # fmt: skip
    text = stage.starter_config(findings, output, vectors or "", unlabelled or "")
    summary = "\n".join(findings.summary())
    if output is None:
        click.echo(summary, err=True)  # stdout is the config: rnnpipe init data.csv > data.toml
        click.echo(text, nl=False)
        return
    stage.write_new(output, text)
    click.echo(summary)
    click.echo(f"wrote {output}: rnnpipe run {output}  (every setting: rnnpipe config {output})")


if __name__ == "__main__":
    sys.exit(main())
