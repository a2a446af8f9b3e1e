"""Sphinx directives of the streamem documentation (a local extension, not part of streamem).

``.. example-gallery::``
    One section per script of ``scripts/examples``: its docstring as text, then its code
    (without the docstring) through ``literalinclude``. The scripts are not run.
``.. cli-help::``
    ``streamem --help`` and every subcommand's ``--help``, formatted from the argument
    parser itself (``streamem.cli.build_parser``), so the page follows the CLI.

And a check, once every page is read, that the API reference documents every public object of
``streamem.__all__``: a name missing there is a warning, so ``-W`` fails the build.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

HELP_WIDTH = "80"  # columns of the formatted --help, whatever the terminal building the docs


def _parse(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    container = nodes.section()
    container.document = directive.state.document
    nested_parse_with_titles(directive.state, StringList(lines, source=source), container)
    return container.children


def _script_parts(path: Path) -> tuple[str, str, int]:
    """Title, the rest of the docstring, and the first line of code after the docstring."""
    text = path.read_text(encoding="utf-8")
    module = ast.parse(text)
    docstring = ast.get_docstring(module) or ""
    first, _, rest = docstring.partition("\n")
    body = module.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        start = body[0].end_lineno + 1
    else:
        start = 1
    lines = text.splitlines()
    while start <= len(lines) and not lines[start - 1].strip():
        start += 1
    return first.strip().rstrip("."), rest.strip(), start


class ExampleGallery(SphinxDirective):
    """Every ``*.py`` file of the examples folder, in name order, with docstring and code."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        folder = Path(self.config.streamem_examples_dir)
        scripts = sorted(folder.glob("*.py"))
        if not scripts:
            logger.warning(
                "example-gallery: no scripts in %s", folder, location=self.get_location()
            )
            return []
        source_dir = Path(self.env.srcdir)
        rst: list[str] = []
        for script in scripts:
            self.env.note_dependency(str(script))
            title, description, start = _script_parts(script)
            relative = os.path.relpath(script, source_dir).replace(os.sep, "/")
            rst += [
                f".. _example-{script.stem.replace('_', '-')}:",
                "",
                script.name,
                "-" * len(script.name),
                "",
                f"**{title}.**",
                "",
                *description.splitlines(),
                "",
                f".. literalinclude:: /{relative}",
                "   :language: python",
                f"   :lines: {start}-",
                "",
            ]
        return _parse(self, rst, str(folder))


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            found += list(action.choices.items())
    return found


class CliHelp(SphinxDirective):
    """``streamem --help``, then one section per subcommand with its ``--help``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from streamem import cli

        self.env.note_dependency(cli.__file__)  # rebuilt when the CLI changes
        with _columns(HELP_WIDTH):
            parser = cli.build_parser()
            parser.prog = "streamem"
            blocks = [("streamem --help", parser.format_help())]
            for name, sub in _subcommands(parser):
                blocks.append((f"streamem {name} --help", sub.format_help()))
        rst: list[str] = []
        for index, (command, text) in enumerate(blocks):
            if index:
                name = command.split()[1]
                heading = f"``streamem {name}``"
                rst += [f".. _cli-{name}:", "", heading, "-" * len(heading), ""]
            rst += [".. code-block:: text", ""]
            rst += [f"   $ {command}", *(f"   {line}".rstrip() for line in text.splitlines()), ""]
        return _parse(self, rst, "streamem.cli.build_parser")


@contextlib.contextmanager
def _columns(width: str) -> Any:
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def check_api_coverage(app: Sphinx, env: Any) -> None:
    """Warn about every name of ``streamem.__all__`` that the API reference does not document."""
    import streamem

    documented = set(env.get_domain("py").objects)
    for name in streamem.__all__:
        if name != "__version__" and f"streamem.{name}" not in documented:
            logger.warning(
                "streamem.%s is public (streamem.__all__) but not in the API reference", name
            )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("streamem_examples_dir", "", "env")
    app.add_directive("example-gallery", ExampleGallery)
    app.add_directive("cli-help", CliHelp)
    app.connect("env-check-consistency", check_api_coverage)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
