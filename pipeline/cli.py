"""`rnnpipe`: the command line over the pipeline's stages.

Each command parses its options, loads the config and calls one library function (`pipeline.<stage>.run(config,
run_dir)`); nothing here knows how a stage works. A `PipelineError` (bad config, data, run directory or export) is
printed as one line on stderr with a non-zero exit; `--debug` shows tracebacks and TensorFlow's own logging.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import click

from pipeline import __version__
from pipeline.errors import PipelineError

logger = logging.getLogger("pipeline")


class _Group(click.Group):
    """Turns user errors into one line on stderr; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PipelineError as e:
            if ctx.meta.get("rnnpipe.debug"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; progress is saved, run the same command again to resume", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            # Everything is saved; skip interpreter shutdown, which can wait on tf.data worker threads that the
            # interrupt left mid-batch.
            os._exit(130)
        except click.UsageError as e:
            # click's default shows the whole usage block; one line naming the problem reads better in logs.
            command = e.ctx.command_path if e.ctx else "rnnpipe"
            click.echo(f"error: {e.format_message()} (see '{command} --help')", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:  # a bug, or an input we failed to anticipate: still one line, details on request
            if ctx.meta.get("rnnpipe.debug"):
                raise
            message = str(e).strip().splitlines()[0] if str(e).strip() else ""
            click.echo(f"error: {type(e).__name__}: {message} (run with --debug for the traceback)", err=True)
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
      rnnpipe predict runs/imdb_lstm/export/model "A wonderful film."

    Stages write into a run directory (default: runs/<config name>) and read what earlier stages left there, so
    each one can be re-run on its own: tokenize -> train -> evaluate -> export.
    """
    ctx.meta["rnnpipe.debug"] = debug
    # TensorFlow reads this when it is first imported, which the stage commands do lazily (keeps --help fast).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "2")
    if not debug:
        _import_tensorflow_quietly()
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _import_tensorflow_quietly() -> None:
    """TensorFlow's C++ start-up banners (oneDNN, CPU features) ignore TF_CPP_MIN_LOG_LEVEL; they would bury the
    one-line messages this CLI promises, so its native stderr is muted while it loads."""
    if "tensorflow" in sys.modules:
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


def _config_options(overwrite: bool = True):
    """CONFIG, --run-dir, --set (and --overwrite), shared by the stage commands: the command gets the loaded config
    and the run directory, opened and locked for the whole command."""

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
            from pipeline import rundir
            from pipeline.config import load_config

            config = load_config(config_path, overrides)
            with rundir.opened(run_dir or rundir.default_run_dir(config_path), config) as rd:
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
    from pipeline import tokenize as stage

    click.echo(stage.run(config, run_dir, overwrite=overwrite).summary())


@main.command()
@_config_options()
def train(config, run_dir, overwrite):
    """Train the model, resuming an interrupted run; keeps the best checkpoint on train.monitor.

    With model.ensemble = K > 1 the K members are trained one after the other (in <run_dir>/members/) and then
    joined into one checkpoint that averages their probabilities."""
    from pipeline import train as stage

    click.echo(stage.run(config, run_dir, overwrite=overwrite).summary())


@main.command()
@_config_options()
def evaluate(config, run_dir, overwrite):
    """Evaluate the best checkpoint on `evaluate.split`; writes metrics.json."""
    from pipeline import evaluate as stage

    click.echo(stage.run(config, run_dir, overwrite=overwrite).summary())


@main.command()
@_config_options(overwrite=False)
def export(config, run_dir):
    """Write a SavedModel for TensorFlow Serving to <run_dir>/export/<export.name>/<version>/.

    A new version is written when the model or the export settings changed since the last one; versions are never
    replaced."""
    from pipeline import export as stage

    click.echo(stage.run(config, run_dir).summary())


@main.command()
@_config_options()
def run(config, run_dir, overwrite):
    """Run every stage: tokenize -> train -> evaluate -> export (each skipped while up to date)."""
    from pipeline import evaluate, export, tokenize, train

    click.echo(tokenize.run(config, run_dir, overwrite=overwrite).summary())
    click.echo(train.run(config, run_dir, overwrite=overwrite).summary())
    click.echo(evaluate.run(config, run_dir, overwrite=overwrite).summary())
    click.echo(export.run(config, run_dir).summary())


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
    type=click.File("r", encoding="utf-8"),
    help="Read texts from this file, one per line ('-' for stdin).",
)
def predict(export_dir: Path, texts: tuple[str, ...], input_file) -> None:
    """Classify TEXTS with an exported sentiment model; one JSON line per text.

    EXPORT_DIR is a version folder (export/model/3) or the model folder above it (the highest version is used,
    as TF Serving would).
    """
    import json

    from pipeline import predict as stage

    lines = list(texts) + ([line.rstrip("\r\n") for line in input_file] if input_file else [])
    if not lines:
        raise click.UsageError("give TEXT arguments or --input FILE")
    for result in stage.predict(export_dir, lines):
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
    "text" being the continuation. EXPORT_DIR is a version folder or the model folder above it."""
    import json

    from pipeline import generate as stage

    if (prompt is None) == (input_file is None):
        raise click.UsageError("give --prompt TEXT or --input FILE (one of the two)")
    sampling = stage.Sampling(length, temperature, top_k, top_p, seed)
    sampling.check()
    source = "--prompt" if input_file is None else input_file.name
    prompts = [prompt] if input_file is None else stage.read_prompts(input_file, source)
    generator = stage.Generator(export_dir)
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


if __name__ == "__main__":
    sys.exit(main())
