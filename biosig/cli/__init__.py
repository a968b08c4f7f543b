"""The ``biosig`` command line: one module per command."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import warnings

import click

from .. import __version__
from ..errors import BiosigError

#: Command name -> module under biosig.cli holding a click command of the same name.
#: Modules are imported only when their command runs, so `biosig plugins list` does not
#: pay for importing torch.
COMMANDS = {
    "train": "Train a classifier on labelled recordings.",
    "pretrain": "Pretrain the backbone on unlabelled recordings.",
    "predict": "Classify every window of every recording.",
    "evaluate": "Score a trained model against labelled recordings.",
    "plugins": "List and inspect plugins.",
    "demo": "Train, predict and evaluate on synthetic data.",
    "bench": "Prediction throughput and memory, model alone and from files.",
}

#: What click 8.2+ raises for a bare ``biosig`` (8.1 prints the help and exits by itself);
#: its message is the whole help text, shown as it is.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _PipeClosed(Exception):
    """stdout's reader went away. Carries a BrokenPipeError past click, which would
    otherwise swallow it and exit 1 itself."""


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise _PipeClosed() from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{name}")
        return getattr(module, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="biosig")
def cli() -> None:
    """Train and run a multi-scale CNN + Transformer classifier on 1-D signals."""


def _setup_messages() -> None:
    """Warnings and log lines as single ``warning: …`` lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("biosig")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO if os.environ.get("BIOSIG_VERBOSE") else logging.WARNING)
    logger.propagate = False
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.INFO, "info")

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors become one ``error:`` line and a non-zero exit code."""
    _setup_messages()
    try:
        cli.main(args=argv, prog_name="biosig", standalone_mode=False)
        # Flushed here so that a closed pipe surfaces below, not at interpreter shutdown.
        sys.stdout.flush()
    except BiosigError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except _NO_ARGS_IS_HELP as exc:
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        # One line instead of click's usage, hint and "Error:" lines; a UsageError keeps
        # exit code 2.
        click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C (and SIGTERM, raised as one) into Abort.
        if isinstance(_interrupt_behind(exc), _Terminated):
            click.echo("terminated", err=True)
            return 143  # 128 + SIGTERM, as a shell reports a command it killed
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except _Terminated:
        click.echo("terminated", err=True)
        return 143
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except (BrokenPipeError, _PipeClosed):
        # The reader went away (`biosig predict … | head`): stop quietly. Point stdout at
        # devnull so that the flush at exit does not fail again (as the Python docs
        # suggest), and exit 141 like a command killed by SIGPIPE, so that a pipeline under
        # `set -o pipefail` still learns the output was cut short.
        try:
            stdout = sys.stdout.fileno()
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout)
        except (OSError, ValueError):
            pass  # stdout is not a file (captured in tests): nothing to redirect
        return 141
    except OSError as exc:
        # The file system refused (--out names a file, permission denied, disk full): a
        # user's problem to fix, said in one line.
        if exc.filename is None or not exc.strerror:
            click.echo(f"error: {exc}", err=True)
        else:
            click.echo(f"error: {exc.filename}: {exc.strerror}", err=True)
        return 2
    except Exception as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:
            # Ctrl-C or SIGTERM landed inside a library's write (torch.save's zip writer),
            # whose clean-up then failed in turn: the interruption is what happened.
            terminated = isinstance(interrupt, _Terminated)
            click.echo("terminated" if terminated else "interrupted", err=True)
            return 143 if terminated else 130
        hint = _install_hint(exc)
        if hint is not None:
            click.echo(f"error: {hint}", err=True)
            return 2
        if os.environ.get("BIOSIG_DEBUG"):
            raise
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc} "
            "(set BIOSIG_DEBUG=1 to see the traceback)",
            err=True,
        )
        return 1
    return 0


def run() -> None:
    _results_only_on_stdout()
    _terminate_as_interrupt()
    sys.exit(main())


def _install_hint(exc: Exception) -> str | None:
    """For a library left out of a lean install (plugins import theirs when they first read
    a file), what is missing and the line that installs it; ``None`` for any other error."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    from ..plugin.registry import module_install_hint

    hint = module_install_hint(exc.name)
    return None if hint is None else f"{exc.name} is not installed: {hint}"


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM an exception was raised while handling, if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be."""


def _terminate_as_interrupt() -> None:
    """SIGTERM (a scheduler's kill, ``timeout``, torchrun stopping a rank) unwinds as
    Ctrl-C does: every temporary output is removed on the way out, nothing half-written
    is renamed into place, and the exit code says so."""

    def terminate(signum: int, frame: object) -> None:
        raise _Terminated

    # ValueError: not the main thread (an embedding host), whose own handling stands.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, terminate)


def _results_only_on_stdout() -> None:
    """Give Python's ``sys.stdout`` a descriptor of its own and point descriptor 1 at
    stderr: what C libraries print there (pyedflib's ``filesize … != …``) then reaches the
    terminal as a diagnostic, never the tables a user pipes on."""
    try:
        sys.stdout.flush()
        results = os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return  # no real descriptors (an embedding host): leave them as they are
    previous = sys.stdout
    sys.stdout = open(  # noqa: SIM115 (lives as long as the process)
        results,
        "w",
        encoding=previous.encoding,
        errors=previous.errors,
        buffering=1 if previous.isatty() else -1,
    )
