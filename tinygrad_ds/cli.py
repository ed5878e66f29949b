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
@click.argument("model_file", type=click.Path(), required=False)
@click.option("--data", "data_spec", default=None,
              help="digits, shapes, cifar10:DIR, mnist:DIR or fashion-mnist:DIR [default: "
              "digits for a (1, 28, 28) input, shapes otherwise]")
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
              help="basic = random crop (+ flip, except for digits); the others add to basic")
@click.option("--schedule", default="cosine", show_default=True,
              type=click.Choice(["constant", "cosine", "step"]))
@click.option("--patience", default=0, show_default=True, type=int,
              help="early stopping on validation loss after this many epochs (0: off)")
@click.option("--train-size", default=None, type=int,
              help="images in a built-in training set [default: 60000 digits, 10000 shapes]")
@click.option("--val-size", default=None, type=int,
              help="images in a built-in validation set [default: 10000 digits, 2000 shapes]")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="run folder for history.csv, curves.png, best.npz, last.npz "
              "[default: runs/<model file name>]")
@click.option("--overwrite", is_flag=True, help="replace the files of an earlier run in --out")
@click.option("--resume", "resume_dir", default=None, type=click.Path(file_okay=False),
              help="continue the run in this folder from its last.npz, with its settings")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="run each training step as one compiled plan (tds.compile: fused loops); "
              "cpu only, not yet faster for convolutions [default: no; --resume: as the run]")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
              help="where to train [default: cpu; --resume: as the run]; cuda needs an NVIDIA "
              "GPU and numba-cuda")
@click.option("--quiet", is_flag=True, help="no progress output")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
@click.pass_context
def train_cmd(ctx, model_file, data_spec, epochs, batch_size, optimizer, lr, weight_decay,
              augment, schedule, patience, train_size, val_size, seed, out, overwrite,
              resume_dir, compile_, device, quiet, debug) -> None:
    """Train the model that MODEL_FILE defines (`model` or `build_model()`, and `input_shape`);
    with --resume, MODEL_FILE defaults to the one the run was started with.

    Writes a run folder: history.csv and curves.png, updated after every epoch, best.npz
    (the best epoch by validation accuracy) and last.npz (what --resume continues from).
    Ctrl-C stops after the last complete epoch and says how to resume.

    \b
    Example:
      tds train examples/lenet.py --epochs 2          # digits: about 99% validation accuracy
      tds train examples/resnet.py --epochs 15 --augment cutout --out runs/r20
      tds train --resume runs/lenet --epochs 4        # after Ctrl-C, or to train further
      tds train lenet.py --data mnist:~/data/mnist --optimizer adamw --lr 2e-3
      tds train examples/lenet.py --epochs 1 --compile   # the step as one compiled plan
      tds train examples/resnet.py --device cuda        # on the GPU
    """
    from .app.train_run import default_out, resume_run, train_model_file
    from .errors import TdsError

    try:
        if model_file is None and resume_dir is None:
            raise TdsError("give the MODEL_FILE to train, such as examples/lenet.py (or "
                           "--resume RUN_FOLDER to continue a run)")
        if resume_dir is not None:
            ignored = [f"--{p.replace('_', '-')}" for p in
                       ("data_spec", "batch_size", "optimizer", "lr", "weight_decay", "augment",
                        "schedule", "patience", "train_size", "val_size", "seed", "out",
                        "overwrite")
                       if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
            if ignored:
                raise TdsError(f"--resume continues a run with the settings it was started "
                               f"with; drop {', '.join(ignored).replace('--data-spec', '--data')}"
                               " (only --epochs may change, to train further)")
            given = ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE
            result = resume_run(resume_dir, model_file, epochs if given else None, quiet=quiet,
                                compile=compile_, device=device)
        else:
            result = train_model_file(
                model_file, data=data_spec, epochs=epochs, batch_size=batch_size,
                optimizer=optimizer, lr=lr, weight_decay=weight_decay, augment=augment,
                seed=seed, out=out, schedule=schedule, patience=patience,
                train_size=train_size, val_size=val_size, quiet=quiet, overwrite=overwrite,
                compile=bool(compile_), device=device or "cpu")
    except KeyboardInterrupt:  # a second Ctrl-C: the last complete epoch is still on disk
        if debug:
            raise
        _ignore_ctrl_c()
        folder = resume_dir or out or default_out(model_file)
        click.echo(f"\ninterrupted; {folder} holds the epochs completed so far; resume with: "
                   f"tds train {model_file or ''} --resume {folder}".replace("  ", " "),
                   err=True)
        ctx.exit(130)
    except TdsError as e:
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    if result.interrupted:
        _ignore_ctrl_c()
        k = result.epochs_done
        if k:
            click.echo(f"\ninterrupted after epoch {k}; resume with: tds train "
                       f"{result.model_file} --resume {result.out}", err=True)
        else:
            click.echo("\ninterrupted during epoch 1, before any epoch was complete; "
                       f"nothing to resume: start again with tds train {result.model_file} "
                       f"--out {result.out}", err=True)
        ctx.exit(130)
    if result.diverged:
        raise click.ClickException(result.stop_reason or "training diverged")


def _ignore_ctrl_c() -> None:
    """On the way out after a Ctrl-C: more presses must not turn a clean exit into a traceback."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@main.command("eval")
@click.argument("model_file", type=click.Path())
@click.argument("checkpoint", type=click.Path())
@click.option("--data", "data_spec", default=None,
              help="digits, shapes, cifar10:DIR, mnist:DIR [default: the data the checkpoint "
              "was trained on, its validation set]")
@click.option("--batch-size", default=None, type=int,
              help="[default: the training run's]")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def eval_cmd(model_file, checkpoint, data_spec, batch_size, debug) -> None:
    """Score CHECKPOINT (best.npz or last.npz of a tds train run) of the model MODEL_FILE
    defines on a validation set, normalised as in training: the same numbers training printed.

    \b
    Example:
      tds eval examples/lenet.py runs/lenet/best.npz
      tds eval examples/lenet.py runs/lenet/best.npz --data mnist:~/data/mnist
    """
    from .app.checkpoint_file import evaluate_checkpoint
    from .errors import TdsError

    try:
        report = evaluate_checkpoint(model_file, checkpoint, data_spec, batch_size)
    except TdsError as e:
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(report.text)


@main.command("viz")
@click.argument("model_file", type=click.Path())
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="file to write [default: <model file name>.<format> here]")
@click.option("--format", "fmt",
              type=click.Choice(["svg", "png", "pdf", "dot", "json", "html"]), default=None,
              help="[default: from --output's suffix, else svg]; html: one self-contained "
              "interactive page")
@click.option("--level", type=click.Choice(["module", "op", "scalar"]), default="module",
              show_default=True, help="one node per layer, one per op, or one per number "
              "(scalar: every multiply and add, with data and grad, for small models)")
@click.option("--frames", type=click.Path(file_okay=False), default=None,
              help="with --level scalar: a folder for one drawing per backward step")
@click.option("--max-scalars", type=click.IntRange(min=1), default=2000, show_default=True,
              help="with --level scalar: refuse a model needing more Values")
@click.option("--depth", type=click.IntRange(min=1), default=None,
              help="collapse module calls at this depth of the module tree (1: top level)")
@click.option("--backward", is_flag=True, help="draw the backward pass")
@click.option("--grads", is_flag=True,
              help="colour nodes by gradient norm from one forward/backward on random input")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="weights to load first (tds train's best.npz), e.g. for --grads")
@click.option("--params", is_flag=True, help="draw parameter nodes")
@click.option("--fold", is_flag=True, help="draw a run of identical blocks as one node 'x N'")
@click.option("--edge-shapes", is_flag=True, help="print each value's shape on its edge")
@click.option("--input-shape", default=None, help="override the file's, e.g. 1,3,32,32")
@click.option("--train-mode", is_flag=True, help="trace in training mode [default: eval]")
@click.option("--compiled", is_flag=True,
              help="draw the forward as tds.compile runs it: each fused group (one generated "
              "loop) a box, the other ops outside")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def viz_cmd(model_file, output, fmt, level, frames, max_scalars, depth, backward, grads,
            checkpoint, params, fold, edge_shapes, input_shape, train_mode, compiled,
            debug) -> None:
    """Draw the network MODEL_FILE defines, print its summary and its number of paths.

    \b
    Example:
      tds viz examples/resnet.py                      # writes resnet.svg
      tds viz examples/resnet.py -o resnet.png --depth 2
      tds viz examples/resnet.py -o resnet.html       # interactive page, works offline
      tds viz examples/resnet.py --depth 2 --fold     # layer1.0 .. layer1.2 x 3
      tds viz examples/plain.py --grads               # colour by gradient norm
      tds viz examples/resnet.py --grads --checkpoint runs/r20/best.npz
      tds viz examples/lenet.py --level op --backward
      tds viz examples/mlp.py --level scalar --frames frames/   # every multiply and add
      tds viz examples/resnet.py --compiled -o resnet_compiled.svg   # the fused loops
    """
    from .app.viz_report import parse_shape, viz_model_file

    try:
        shape = parse_shape(input_shape) if input_shape is not None else None
        result = viz_model_file(model_file, output, fmt, level, depth, backward, grads, shape,
                                params, "train" if train_mode else "eval", fold=fold,
                                edge_shapes=edge_shapes, checkpoint=checkpoint, frames=frames,
                                max_scalars=max_scalars, compiled=compiled)
    except Exception as e:  # noqa: BLE001 - one clear line; --debug shows the traceback
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(result.summary)
    if result.grad_table:
        click.echo(result.grad_table)
    for line in result.notes:
        click.echo(line)
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


@main.command("export")
@click.argument("model_file", type=click.Path())
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True,
              help="the .onnx file to write")
@click.option("--input-shape", default=None, help="override the file's, e.g. 1,3,32,32")
@click.option("--opset", type=click.IntRange(min=17), default=17, show_default=True,
              help="ONNX opset version")
@click.option("--debug", is_flag=True, help="show Python tracebacks")
def export_cmd(model_file, output, input_shape, opset, debug) -> None:
    """Write the model MODEL_FILE defines as an ONNX inference model (eval mode, the current
    weights; the batch axis free where the ops allow it), for onnxruntime or any other runtime.
    Needs the onnx package: pip install tinygrad-ds[onnx].

    \b
    Example:
      tds export examples/resnet.py -o resnet.onnx
      tds export model.py -o model.onnx --input-shape 1,3,64,64 --opset 18
    """
    from .app.export import export_model_file
    from .app.viz_report import parse_shape

    try:
        shape = parse_shape(input_shape) if input_shape is not None else None
        written = export_model_file(model_file, output, shape, opset)
    except Exception as e:  # noqa: BLE001 - one clear line; --debug shows the traceback
        if debug:
            raise
        raise click.ClickException(str(e)) from None
    click.echo(str(written))


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
