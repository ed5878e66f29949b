"""`tds`: the command line. Each command parses its options and calls one library function."""
from __future__ import annotations

import click

from ._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tds")
def main() -> None:
    """tinygrad_ds: build, train and look at small deep networks.

    \b
    Example:
      tds --version
    """


@main.command("train")
@click.argument("model_file", type=click.Path())
@click.option("--data", "data_spec", default="builtin", show_default=True,
              help="builtin, cifar10:DIR, mnist:DIR or fashion-mnist:DIR")
@click.option("--epochs", default=10, show_default=True, type=int)
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--optimizer", default="sgd", show_default=True,
              type=click.Choice(["sgd", "adam", "adamw"], case_sensitive=False))
@click.option("--lr", type=float, default=None,
              help="learning rate [default: 0.1 for sgd, 1e-3 for adam/adamw]")
@click.option("--weight-decay", type=float, default=None,
              help="[default: 5e-4 for sgd, 0 for adam, 0.05 for adamw]")
@click.option("--augment", default="basic", show_default=True,
              type=click.Choice(["none", "basic", "cutout", "randaugment", "mixup", "cutmix"]),
              help="basic = random crop + flip; the others add to basic")
@click.option("--schedule", default="cosine", show_default=True,
              type=click.Choice(["constant", "cosine", "step"]))
@click.option("--patience", default=0, show_default=True, type=int,
              help="early stopping on validation loss after this many epochs (0: off)")
@click.option("--train-size", default=10000, show_default=True, type=int,
              help="images in the built-in training set")
@click.option("--val-size", default=2000, show_default=True, type=int,
              help="images in the built-in validation set")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default="tds-run", show_default=True, type=click.Path(file_okay=False),
              help="folder for history.csv, curves.png and best.npz")
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def train_cmd(model_file, data_spec, epochs, batch_size, optimizer, lr, weight_decay, augment,
              schedule, patience, train_size, val_size, seed, out, quiet, debug) -> None:
    """Train the model that MODEL_FILE defines (`model` or `build_model()`, and `input_shape`).

    \b
    Example:
      tds train examples/resnet.py --epochs 15 --augment cutout --out runs/r20
      tds train lenet.py --data mnist:~/data/mnist --optimizer adamw --lr 2e-3
    """
    from .errors import TdsError
    from .app.train_run import train_model_file

    try:
        result = train_model_file(
            model_file, data=data_spec, epochs=epochs, batch_size=batch_size,
            optimizer=optimizer, lr=lr, weight_decay=weight_decay, augment=augment, seed=seed,
            out=out, schedule=schedule, patience=patience, train_size=train_size,
            val_size=val_size, quiet=quiet)
    except TdsError as e:
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    if result.diverged:
        raise click.ClickException(result.stop_reason or "training diverged")


@main.command("viz")
@click.argument("model_file", type=click.Path())
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="file to write [default: <model file name>.<format> here]")
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "pdf", "dot", "json"]),
              default=None, help="[default: from --output's suffix, else svg]")
@click.option("--level", type=click.Choice(["module", "op"]), default="module",
              show_default=True, help="one node per layer, or one per op")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="collapse module calls at this depth of the module tree (1: top level)")
@click.option("--backward", is_flag=True, help="draw the backward pass")
@click.option("--grads", is_flag=True,
              help="colour nodes by gradient norm from one forward/backward on random input")
@click.option("--params", is_flag=True, help="draw parameter nodes")
@click.option("--input-shape", default=None, help="override the file's, e.g. 1,3,32,32")
@click.option("--train-mode", is_flag=True, help="trace in training mode [default: eval]")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def viz_cmd(model_file, output, fmt, level, depth, backward, grads, params, input_shape,
            train_mode, debug) -> None:
    """Draw the network MODEL_FILE defines, print its summary and its number of paths.

    \b
    Example:
      tds viz examples/resnet.py                      # writes resnet.svg
      tds viz examples/resnet.py -o resnet.png --depth 2
      tds viz examples/plain.py --grads               # colour by gradient norm
      tds viz examples/lenet.py --level op --backward
    """
    from .app.viz_report import parse_shape, viz_model_file

    try:
        shape = parse_shape(input_shape) if input_shape is not None else None
        result = viz_model_file(model_file, output, fmt, level, depth, backward, grads, shape,
                                params, "train" if train_mode else "eval")
    except Exception as e:  # noqa: BLE001 - one clear line; --debug shows the traceback
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(result.summary)
    if result.written.note:
        click.echo(result.written.note)
    else:
        click.echo(f"Wrote {result.written.path}")
    click.echo(result.paths_line)


@main.command("summary")
@click.argument("model_file", type=click.Path())
@click.option("--input-shape", default=None, help="override the file's, e.g. 1,3,32,32")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def summary_cmd(model_file, input_shape, debug) -> None:
    """Print the summary table (module, type, output shape, parameters, multiply-adds) of the
    model MODEL_FILE defines.

    \b
    Example:
      tds summary examples/vgg.py
      tds summary examples/lenet.py --input-shape 8,1,28,28
    """
    from .app.viz_report import parse_shape, summary_of_file

    try:
        shape = parse_shape(input_shape) if input_shape is not None else None
        text = summary_of_file(model_file, shape)
    except Exception as e:  # noqa: BLE001
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(text)


@main.command("paths")
@click.argument("model_file", type=click.Path(), required=False)
@click.option("--blocks", type=click.IntRange(min=0), default=None,
              help="an abstract chain of this many residual blocks (no model file)")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="paths to list")
@click.option("--length", type=click.IntRange(min=0), default=None,
              help="list only paths of this length")
@click.option("--through", default=None, help="list only paths through this block (f1, or "
              "a module path such as layer1.0)")
@click.option("--highlight", default=None, help="in the drawing, grey out the paths that "
              "skip this block")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".",
              show_default=True, help="folder for the drawing and the plots")
@click.option("--format", "fmt", type=click.Choice(["svg", "png", "pdf", "dot"]),
              default="svg", show_default=True, help="of the unraveled drawing")
@click.option("--no-draw", is_flag=True, help="print only, write no files")
@click.option("--decompose", type=click.IntRange(min=0), default=None, metavar="K",
              help="write dy/dh_K as a sum over paths (text and LaTeX)")
@click.option("--grad", is_flag=True, help="measure the gradient by path length")
@click.option("--grad-samples", type=click.IntRange(min=1), default=10, show_default=True,
              help="paths measured per length")
@click.option("--lesion", "lesion", type=click.Path(), default=None,
              metavar="CHECKPOINT", help="lesion study of the trained model (an .npz)")
@click.option("--data", "data_spec", default="builtin", show_default=True,
              help="dataset for --lesion: builtin, cifar10:DIR, mnist:DIR")
@click.option("--val-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="built-in validation images for --lesion")
@click.option("--input-shape", default=None, help="override the file's, e.g. 1,3,32,32")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def paths_cmd(model_file, blocks, limit, length, through, highlight, out_dir, fmt, no_draw,
              decompose, grad, grad_samples, lesion, data_spec, val_size, input_shape, seed,
              debug) -> None:
    """Count, tabulate, list and draw the input-to-output paths of the network MODEL_FILE
    defines (2^T for T residual blocks), or of an abstract chain of --blocks T.

    \b
    Example:
      tds paths --blocks 4 --through f1 --format png     # the 16 paths, the 8 through f1
      tds paths examples/resnet.py --decompose 1
      tds paths examples/resnet.py --grad --grad-samples 5
      tds paths examples/resnet.py --lesion runs/r20/best.npz --data builtin
    """
    from .app.paths_report import paths_report
    from .app.viz_report import parse_shape

    try:
        shape = parse_shape(input_shape) if input_shape is not None else None
        result = paths_report(model_file, blocks, limit, length, through, highlight,
                              None if no_draw else out_dir, fmt, decompose, grad, grad_samples,
                              lesion, data_spec, val_size, shape, seed)
    except Exception as e:  # noqa: BLE001 - one clear line; --debug shows the traceback
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(result.text)


# ---- tds experiment: the lectures' experiments (tinygrad_ds.experiments) ----------------------
class _ExperimentGroup(click.Group):
    """`tds experiment list` is a subcommand; any other word is the name of an experiment."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage("tds experiment", "list | NAME [OPTIONS]")


class _ExperimentRun(click.Command):
    def format_usage(self, ctx, formatter):
        formatter.write_usage("tds experiment", "NAME [OPTIONS]")


@main.group("experiment", cls=_ExperimentGroup, invoke_without_command=False)
def experiment_cmd() -> None:
    """Run one of the lectures' experiments: figures (PNG), the numbers behind them (CSV) and
    summary.md (the lecture's claim, what was measured, and whether they agree).

    \b
    Example:
      tds experiment list
      tds experiment bn-variance --quick
      tds experiment vgg-depth-grid --data cifar10:~/data/cifar10 --out runs/vgg
    """


@experiment_cmd.command("list")
def experiment_list_cmd() -> None:
    """List the experiments.

    \b
    Example:
      tds experiment list
    """
    from .experiments import list_experiments

    items = list_experiments()
    width = max(len(n) for n, _ in items)
    for name, desc in items:
        click.echo(f"{name:<{width}}  {desc}")


@experiment_cmd.command("run", cls=_ExperimentRun, hidden=True)
@click.argument("name")
@click.option("--quick", is_flag=True, help="the reduced version (under a minute on 2 cores)")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="folder for the figures, CSVs and summary.md [default: runs/NAME]")
@click.option("--data", "data_spec", default="builtin", show_default=True,
              help="builtin, cifar10:DIR or mnist:DIR")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="training epochs [default: the experiment's own]")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="residual-paths: a trained residual network's weights (.npz) to analyse")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def experiment_run_cmd(name, quick, out, data_spec, seed, epochs, checkpoint, debug) -> None:
    """Run experiment NAME (see `tds experiment list`).

    \b
    Example:
      tds experiment residual-paths --quick --out runs/paths
    """
    from .errors import TdsError
    from .experiments import run_experiment

    try:
        result = run_experiment(name, quick=quick, out=out, data=data_spec, seed=seed,
                                epochs=epochs, checkpoint=checkpoint)
    except TdsError as e:
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(f"{result.name}: {result.verdict.agreement}. {result.verdict.line}")
    click.echo(f"Wrote {len(result.files)} files to {result.out} (read {result.summary_path}) "
               f"in {result.seconds:.0f} s")


if __name__ == "__main__":
    main()
