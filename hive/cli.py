"""The `hive` command line: validate, compile, schema, generate, bench.

Commands are thin: they parse options, call the library and print. Every
`HiveError` becomes a clear message and exit status 1, never a traceback.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="hive",
    help="Compile and run multi-agent LLM workflows and test-time scaling.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that compare Hive with a named peer in one run.")
app.add_typer(bench_app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
