"""What the commands share: option values merged from flags, pipeline files and plugin
defaults, and locating models."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..data.windows import MAX_WINDOW
from ..errors import BiosigError
from ..pipeline import PATH_OPTIONS, load_pipeline, relative_to_pipeline, unknown_key
from ..plugin.contract import Plugin
from ..plugin.options import UnknownPluginOption, set_plugin_options

if TYPE_CHECKING:  # torch, which the checkpoint module imports, is not loaded for --help
    from ..checkpoint import CheckpointMeta

log = logging.getLogger("biosig")


class Options:
    """Option values with precedence: command-line flag, then pipeline file, then default."""

    def __init__(self, ctx: click.Context, pipeline: Path | None) -> None:
        self._ctx = ctx
        params = {
            p.name: p
            for p in ctx.command.params
            if p.expose_value and p.name not in ("pipeline", "more_inputs")
        }
        self._pipeline_path = pipeline
        self._params = set(params)
        # A key may also be spelled as any of the option's other flags (`normalize` for
        # `--normalize`, the alias of `--normalization`); two spellings of one option clash.
        aliases = {
            flag.lstrip("-").replace("-", "_"): p.name
            for p in params.values()
            for flag in p.opts
            if flag.startswith("--")
        }
        loaded: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, value in (load_pipeline(pipeline) if pipeline else {}).items():
            name = aliases.get(key, key)
            if name in loaded:
                raise BiosigError(
                    f"{pipeline}: {spelled[name]} and {key} are one option; give it once"
                )
            loaded[name], spelled[name] = value, key
        # Checked up front as the flags are, so that `lr = -5` or `loss = "hinge"` stops here
        # instead of reaching (or silently steering) training.
        self._pipeline = {
            key: _cast(ctx, params[key], value, f"{pipeline}: {key}")
            for key, value in loaded.items()
            if key in params
        }
        for key in PATH_OPTIONS & set(self._pipeline):
            self._pipeline[key] = self._from_pipeline(self._pipeline[key])
        # The other keys can only be the plugin's own options; checked once it is known.
        self._plugin_values = {k: v for k, v in loaded.items() if k not in params}

    def configure_plugin(self, plugin: Plugin, tokens: Sequence[str]) -> list[str]:
        """Give ``plugin`` its options from the pipeline file, then from ``--<option>``
        flags among ``tokens``; returns the other tokens (input paths)."""
        known = {o.name: o for o in plugin.options}
        for key in self._plugin_values:
            if key not in known:
                raise unknown_key(self._pipeline_path, key, set(self._params) | set(known))
        values = {
            key: self._from_pipeline(value) if known[key].path and value else value
            for key, value in self._plugin_values.items()
        }
        plugin.configure(values)
        labels = self._pipeline.get("labels")
        if labels is not None and labels not in plugin.label_keywords:
            self._pipeline["labels"] = self._from_pipeline(labels)
        return configure_plugin(plugin, tokens)

    def _from_pipeline(self, value: Any) -> Any:
        """A path value (or list of them) as read from the pipeline file's folder."""
        if isinstance(value, (list, tuple)):
            return type(value)(self._from_pipeline(v) for v in value)
        path = relative_to_pipeline(self._pipeline_path, value)
        return Path(path) if isinstance(value, Path) else path

    def get(self, name: str, fallback: Any = None) -> Any:
        source = self._ctx.get_parameter_source(name)
        value = self._ctx.params.get(name)
        if source not in (click.core.ParameterSource.DEFAULT, None):
            return value
        if name in self._pipeline:
            return self._pipeline[name]
        return value if value not in (None, ()) else fallback


def _cast(ctx: click.Context, param: click.Parameter, value: Any, where: str) -> Any:
    """A pipeline value converted and validated by the option's own click type."""
    try:
        if param.multiple and isinstance(value, str):
            value = as_list(value)  # `input = "a.npy"`: one value for a repeatable flag
        elif isinstance(value, list) and not param.multiple:
            if param.type is not click.STRING:
                raise BiosigError(f"{where}: expected one value, got a list")
            # comma-separated options (`augment`) take a TOML list too
            return [param.type_cast_value(ctx, v) for v in value]
        return param.type_cast_value(ctx, value)
    except click.BadParameter as exc:
        raise BiosigError(f"{where}: {exc.message}") from None
    except click.UsageError as exc:
        raise BiosigError(f"{where}: {exc.format_message()}") from None
    except (OverflowError, ValueError, TypeError) as exc:  # 1e400 as a whole number, say
        raise BiosigError(f"{where}: {value!r} is not a valid value ({exc})") from None


def split_plugin_flags(tokens: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The tokens click leaves after its own options, as input paths and plugin options
    (``--<option> VALUE`` or ``--<option>=VALUE``, by flag); which options the plugin
    takes is checked where it is known (:func:`biosig.plugin.options.set_plugin_options`)."""
    inputs: list[str] = []
    values: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--"):
            inputs.append(token)
            continue
        flag, has_value, value = token.partition("=")
        if not has_value:
            if i >= len(tokens):
                raise click.UsageError(f"option {flag} requires an argument")
            value, i = tokens[i], i + 1
        values[flag] = value
    return inputs, values


@contextlib.contextmanager
def plugin_flags_checked() -> Iterator[None]:
    """A plugin option the plugin does not take, found by the library, is a usage error
    here, as click's own unknown options are."""
    try:
        yield
    except UnknownPluginOption as exc:
        raise click.UsageError(str(exc)) from None


def configure_plugin(
    plugin: Plugin, tokens: Sequence[str], meta: CheckpointMeta | None = None
) -> list[str]:
    """Set the plugin options given as flags among ``tokens``; returns the input paths.
    A flag the plugin does not take is a usage error."""
    inputs, values = split_plugin_flags(tokens)
    with plugin_flags_checked():
        set_plugin_options(plugin, values, meta)
    return inputs


def reject_flags(tokens: Sequence[str]) -> None:
    """With no plugin to take them, a ``--flag`` left among the inputs is unknown."""
    for token in tokens:
        if token.startswith("--"):
            raise click.UsageError(f"no such option: {token.partition('=')[0]}")


def as_list(value: Any) -> list[str]:
    """A flag given several times, a TOML list, or a comma-separated string, as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps.",
)
plugin_option = click.option(
    "--plugin", help="Plugin that reads the inputs (see `biosig plugins list`)."
)
input_option = click.option(
    "--input", "input", multiple=True, help="File, directory or glob; repeatable."
)
sample_rate_option = click.option(
    "--sample-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Model rate in Hz; recordings are resampled to it [default: the plugin's].",
)


def seed_option(default: int):
    """``--seed``: every random draw of a run (train, pretrain)."""
    return click.option("--seed", type=int, default=default, show_default=True)


def lr_option(default: float):
    """``--lr``: the peak learning rate of the cosine schedule (train, pretrain)."""
    return click.option(
        "--lr",
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help="Peak learning rate.",
    )


window_option = click.option(
    "--window",
    type=click.IntRange(1, MAX_WINDOW),
    help="Window length in samples at the model rate.",
)
workers_option = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Reader threads reading and preprocessing recordings ahead of the model (0: read "
    "on the main thread).",
)
batch_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Windows per batch [default: 64 to pretrain, 256 to predict or evaluate].",
)

# `--input reads/*.fast5` reaches us as one flag followed by many paths once the shell has
# expanded the glob; the paths after the first land here instead of being an error.
more_inputs_argument = click.argument("more_inputs", nargs=-1, metavar="[MORE_INPUTS]...")

strict_option = click.option(
    "--strict/--no-strict",
    default=False,
    show_default=True,
    help="Stop at the first damaged file or recording instead of skipping it.",
)


force_option = click.option(
    "--force",
    is_flag=True,
    default=False,
    help="Replace the run that --out already holds (kept until this run finishes an epoch).",
)

#: ``ctx.meta`` key where ``--threads`` leaves its value for :func:`compute_threads`.
_THREADS = "biosig.threads"


def _remember_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is not None:
        ctx.meta[_THREADS] = value


threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    expose_value=False,
    callback=_remember_threads,
    help="Threads to compute with [default: OMP_NUM_THREADS, else the cores free of other work].",
)


def compute_threads(readers: int = 0) -> None:
    """Apply ``--threads`` or biosig's thread policy (:func:`biosig.threads.use_threads`);
    a command calls it before it imports torch, with its reader threads. Without
    ``--threads``, a process that imported torch already keeps its own setting."""
    from ..threads import use_threads

    requested = click.get_current_context().meta.get(_THREADS)
    if requested is None and "torch" in sys.modules:
        return  # a process that loaded torch before the command (a notebook, tests) owns it
    policy = use_threads(requested, readers)
    log.info(
        "%d compute thread%s (%s; %d usable cores, %d busy elsewhere)",
        policy.threads, "" if policy.threads == 1 else "s", policy.reason, policy.usable,
        policy.busy,
    )  # fmt: skip


#: ``ctx.meta`` keys the verbosity flags leave for the command to read.
_QUIET, _VERBOSE = "biosig.quiet", "biosig.verbose"


def _verbosity(ctx: click.Context, param: click.Parameter, value: int | bool) -> None:
    if not value:
        return
    ctx.meta[_QUIET if param.name == "quiet" else _VERBOSE] = value
    if ctx.meta.get(_QUIET) and ctx.meta.get(_VERBOSE):
        raise click.UsageError("-q/--quiet and -v/--verbose contradict each other; give one")
    if param.name == "verbose":
        log.setLevel(logging.DEBUG if value > 1 else logging.INFO)


def verbosity_options(command: Callable) -> Callable:
    """``-v/--verbose`` (``-vv`` for debugging detail) and ``-q/--quiet``, for every command.

    Neither is a pipeline key nor reaches the command's arguments: read them back with
    :func:`quiet`. Warnings and errors are shown either way.
    """
    quiet = click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=_verbosity,
        help="No progress bars or progress lines: warnings, errors and results only.",
    )
    verbose = click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        callback=_verbosity,
        help="Also say what is being done, step by step (-vv: with debugging detail).",
    )
    return verbose(quiet(command))


def quiet() -> bool:
    """Whether the running command was given ``-q``: no progress bars or lines."""
    return bool(click.get_current_context().meta.get(_QUIET))


def run_output() -> tuple[Callable[[str], None], bool]:
    """``(echo, progress)`` for a training command: its lines and progress bars, or under
    ``-q`` neither (see :func:`finished_run`)."""
    return (_no_echo, False) if quiet() else (click.echo, True)


def finished_run(run_dir: Path) -> None:
    """Under ``-q`` a training command's one line of output is its run directory, so that
    a script can say ``run=$(biosig train -q …)``; otherwise it was said already."""
    if quiet():
        click.echo(run_dir)


def _no_echo(*_: object, **__: object) -> None:
    """``echo`` under ``-q``: takes what ``click.echo`` takes (``err=True`` too) and says
    nothing."""


resume_option = click.option(
    "--resume",
    type=click.Path(path_type=Path),
    metavar="RUN",
    help="Continue the interrupted run in directory RUN where it stopped, with the settings "
    "it was started with; no other option may be given, except --epochs to raise its total.",
)


def epochs_to_resume_with(ctx: click.Context, run: Path) -> int | None:
    """``--epochs`` when given beside ``--resume RUN`` (to raise the run's total), after
    checking that nothing else was."""
    _reject_flags_with_resume(ctx, run)
    if ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE:
        return ctx.params["epochs"]
    return None


def _reject_flags_with_resume(ctx: click.Context, run: Path) -> None:
    """With ``--resume`` the run's own settings hold; a flag that would change them (or a
    pipeline file, input or plugin option) is an error rather than silently ignored."""
    for param in ctx.command.params:
        if param.name in ("resume", "epochs", "more_inputs") or not param.expose_value:
            continue
        if ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag = param.opts[0]
        if isinstance(param, click.Option) and param.secondary_opts and not ctx.params[param.name]:
            flag = param.secondary_opts[0]
        raise BiosigError(
            f"{flag} cannot be given with --resume: {run} continues with the settings it was "
            "started with (only --epochs may be given, to raise its total)"
        )
    extra = ctx.params["more_inputs"]
    if extra:
        raise BiosigError(
            f"{extra[0]} cannot be given with --resume: {run} continues with the inputs and "
            "plugin options it was started with"
        )
