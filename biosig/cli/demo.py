"""``biosig demo``: synthetic files in real formats, a tiny model trained on them, then
prediction and evaluation on held-out files, from a machine with no data."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import BiosigError
from ..plugin.registry import load_all
from ..training.config import TrainConfig
from .common import compute_threads, threads_option, verbosity_options


@click.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path),
    default=Path("biosig-demo"),
    show_default=True,
    help="Where the data, models and predictions go.",
)
@click.option("--plugin", "only", multiple=True, help="Run only these plugins' demos.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="Training epochs [default: each plugin's demo setting].",
)
@click.option("--device", default="auto", show_default=True)
@threads_option
@verbosity_options
def demo(workdir: Path, only: tuple[str, ...], epochs: int | None, device: str) -> None:
    """Train, predict and evaluate on synthetic data for every plugin that ships some."""
    compute_threads()  # before torch loads OpenMP
    # Imported here, not above: torch and scikit-learn take seconds to import, which
    # `biosig demo --help` need not pay.
    from ..inference.evaluation import run_evaluation
    from ..inference.prediction import run_prediction
    from ..metrics import format_report
    from ..training.runs import TrainRequest, run_training

    listed = [e for e in load_all() if not only or e.name in only]
    for entry in listed:
        if entry.plugin is None:  # its libraries not installed, say: the line that fixes it
            click.echo(f"== {entry.name}: skipped, {entry.error}")
    entries = [e for e in listed if e.plugin is not None]
    if only and not entries:
        raise BiosigError(f"no loadable plugin named {', '.join(only)}")
    ran = 0
    for number, entry in enumerate(entries, start=1):
        plugin = entry.plugin
        base = workdir / plugin.name
        train_data = plugin.make_demo_data(base / "train", seed=0)
        if train_data is None:
            continue
        test_data = plugin.make_demo_data(base / "test", seed=1)
        started = time.perf_counter()
        click.echo(f"== [{number}/{len(entries)}] {plugin.name}: {train_data.description}")
        settings = train_data.settings
        n_epochs = epochs or int(settings.get("epochs", 10))
        model_dir = run_training(
            TrainRequest(
                plugin=plugin.name,
                inputs=[str(p) for p in train_data.inputs],
                labels=str(train_data.labels),
                out=base / "model",
                force=True,  # the demo's own directory: a second demo replaces the first
                preset="tiny",
                window=settings.get("window"),
                hop=settings.get("hop"),
                normalization=settings.get("normalization"),
                sample_rate=settings.get("sample_rate"),
                kernel_features=settings.get("kernel_features"),
                device=device,
                config=TrainConfig(
                    epochs=n_epochs,
                    patience=n_epochs,
                    batch_size=settings.get("batch_size"),
                    # one network, not the small-data ensemble: a demo shows the whole
                    # path in minutes; augmentation and label smoothing stay as defaults
                    ensemble=1,
                ),
                plugin_options=settings.get("options", {}),
            ),
            progress=False,
        )
        run_prediction(
            plugin.name,
            [str(p) for p in test_data.inputs],
            model_dir,
            out=base / "predictions",
            device_name=device,
        )
        report = run_evaluation(
            model_dir,
            plugin.name,
            [str(p) for p in test_data.inputs],
            str(test_data.labels),
            device_name=device,
            progress=False,
        )
        click.echo(f"\nheld-out evaluation ({test_data.description}):")
        click.echo(format_report(report))
        click.echo(
            f"\n{plugin.name} demo took {time.perf_counter() - started:.0f} s\n"
            f"  data         {base / 'train'}, {base / 'test'}\n"
            f"  model        {model_dir}\n"
            f"  predictions  {base / 'predictions'}/windows.tsv, recordings.tsv, segments.tsv\n"
        )
        ran += 1
    if not ran:
        raise BiosigError("no installed plugin provides demo data")
