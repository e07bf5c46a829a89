"""The ``perception-r1`` command line. Each command is a thin shell over a library function."""

from __future__ import annotations

import errno
import json
import re
import sys
import warnings

import click

from perception_r1 import __version__
from perception_r1.errors import UserError
from perception_r1.registry import PluginError, PluginWarning, get_registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="perception-r1")
def cli() -> None:
    """Train and evaluate visual perception policies with rule-based RL (GRPO).

    Every task is a plugin: `perception-r1 tasks` lists what is installed.
    """


@cli.command()
def plugins() -> None:
    """Print the installed plugins, their tasks, rewards and versions as JSON."""
    registry = get_registry()
    click.echo(json.dumps([p.as_dict() for p in registry.plugins.values()], indent=2))


@cli.command()
@click.option("--schema", "schema_of", metavar="TASK", help="Print TASK's solution JSON Schema instead.")
def tasks(schema_of: str | None) -> None:
    """Print a table of the installed tasks (`perception-r1 docs` has the full plugin reference)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    registry = get_registry()
    if schema_of:
        click.echo(json.dumps(registry.task(schema_of).solution_schema, indent=2))
        return
    table = Table("task", "plugin", "coords", "reward range", "metric", "description")
    owners = {t: p.name for p in registry.plugins.values() for t in p.tasks}
    default = registry.default_task()
    for name in sorted(registry.tasks):
        task = registry.tasks[name]
        lo, hi = task.reward_range
        cells = (f"{name} (default)" if name == default else name, owners[name], task.coord_space, f"[{lo:g}, {hi:g}]", task.primary_metric, task.description)
        table.add_row(*(escape(str(cell)) for cell in cells))  # plugin text, never rich markup
    Console(width=max(120, Console().width)).print(table)


def _register_commands() -> None:
    # Commands with heavy imports (torch, transformers) live in their own modules and import lazily.
    from perception_r1.cli import commands

    for command in commands.ALL:
        cli.add_command(command)


# click >= 8.2 raises this for a bare group call in non-standalone mode
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _plugin_warnings_one_line(default):
    """A ``warnings.showwarning`` that prints a :class:`PluginWarning` as one line for the user."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, PluginWarning):
            click.echo(f"perception-r1: warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    return show


#: an error line is cut to this many characters: a message never prints a huge expansion of a file's content
MAX_ERROR_CHARS = 600


def one_line(message: str) -> str:
    """``message`` on one line, at most :data:`MAX_ERROR_CHARS` characters (its start and end kept)."""
    message = " ".join(message.split())
    # control characters from file content (an escape sequence retitles a terminal) are shown, never sent
    message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return f"{message[: MAX_ERROR_CHARS - 100]} ... {message[-80:]}"


#: OSError classes the user fixes (a path, free space, permissions): one line and exit 2 wherever they are
#: raised; any other OSError stays a traceback, a bug to report
USER_ERRNOS = {errno.ENAMETOOLONG: "a path part is longer than the file system allows (255 bytes)",
               errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
               errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.EROFS: "read-only file system",
               errno.ENOTDIR: "a part of the path is a file, not a directory", errno.EISDIR: "is a directory",
               errno.ENOENT: "no such file or directory", errno.ELOOP: "too many levels of symbolic links",
               errno.EEXIST: "already exists", errno.EMFILE: "too many open files", errno.EILSEQ: "not a valid name"}
# an I/O error of a Rust library (safetensors: disk full while saving a model) carries only the errno in text
_RUST_IO = re.compile(r"Os \{ code: (\d+)")


def user_os_error(exc: BaseException) -> OSError | None:
    """The OSError of a class in :data:`USER_ERRNOS` behind ``exc`` (itself, its cause or context, or a Rust
    library's error naming one); None when there is none (a bug: the traceback stays)."""
    for _ in range(8):  # a short chain: raise ... from ... inside library wrappers
        if isinstance(exc, OSError) and exc.errno in USER_ERRNOS:
            return exc
        if (found := _RUST_IO.search(str(exc))) and int(found[1]) in USER_ERRNOS:
            return OSError(int(found[1]), USER_ERRNOS[int(found[1])])
        if (exc := exc.__cause__ or exc.__context__) is None:  # type: ignore[assignment]
            return None
    return None


def os_error_line(exc: OSError) -> str:
    """``exc`` as the user reads it: what failed, the file named (bytes shown escaped) and the class."""
    what = exc.strerror or USER_ERRNOS.get(exc.errno or 0, "")
    where = f"{exc.filename}: " if exc.filename is not None else ""
    hint = " (free space, then --resume continues a run)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return one_line(f"{where}{what}{hint}")


def _not_utf8(args: list[str]) -> str | None:
    """The first argument holding bytes that are not UTF-8 (Python keeps them as surrogates): every file
    written (config.yaml, JSON, the report) would fail on it, perhaps after a whole training run."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return ascii(arg)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: user-fixable errors become one line on stderr and exit code 2, never a traceback."""
    _register_commands()
    with warnings.catch_warnings():
        warnings.simplefilter("always", PluginWarning)
        warnings.showwarning = _plugin_warnings_one_line(warnings.showwarning)
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        # the command line is kept for commands that hand it on (run under `accelerate launch --cpu`)
        args = list(sys.argv[1:] if argv is None else argv)
        if bad := _not_utf8(args):
            raise UserError(f"argument {bad} is not UTF-8 text: rename the file or directory")
        cli.main(args=args, prog_name="perception-r1", standalone_mode=False, obj={"argv": args})
    except _NO_ARGS_IS_HELP as exc:  # `perception-r1` alone: help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        return 0
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"perception-r1: error: {exc.format_message()}{hint}", err=True)
        return 2
    except (UserError, PluginError) as exc:
        click.echo(f"perception-r1: error: {one_line(str(exc))}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("perception-r1: aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"perception-r1: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - only the OSError classes a user fixes; anything else re-raised
        if (os_error := user_os_error(exc)) is None:
            raise
        click.echo(f"perception-r1: error: {os_error_line(os_error)}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
