"""Agent prompt templates: Jinja2 in a sandboxed environment.

Specs are untrusted, so templates are parsed and rendered only by the sandbox
(sandbox.py: no attribute access to Python internals, bounded values). The
compiler needs three facts about a template: whether it parses (and where it
does not), the variables it reads (the agent's parameters), and its static
prefix (the text before the first tag, shared by every call).
"""

from __future__ import annotations

from functools import cache

from jinja2 import TemplateAssertionError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from hive.compiler.sandbox import BoundedSandbox


@cache
def environment() -> SandboxedEnvironment:
    # StrictUndefined: a missing argument is an error, never an empty string in a prompt.
    from jinja2 import StrictUndefined

    return BoundedSandbox(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)


class TemplateProblem(Exception):
    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line  # 1-based line inside the template


def variables(source: str) -> list[str]:
    """The variables `source` reads from its context, in order of first appearance."""
    if "{" not in source:  # no tags at all (most system prompts): nothing to parse
        return []
    env = environment()
    try:
        tree = env.parse(source)
        names = list(tree.find_all(nodes.Name))
        if all(n.ctx == "load" for n in names):
            # No assignments (no for/set/macro/with): every name read is the context's.
            # This is most prompts, and skips the code generation below (2/3 of the time).
            _check_filters_and_tests(tree, env)
            undeclared = {n.name for n in names} - set(env.globals)
        else:
            # Compiling the tree resolves scopes and finds what parsing does not,
            # such as an unknown filter.
            undeclared = meta.find_undeclared_variables(tree) - set(env.globals)
    except TemplateSyntaxError as exc:  # TemplateAssertionError too
        raise TemplateProblem(exc.message or "invalid template", exc.lineno or 1) from None
    except RecursionError:
        raise TemplateProblem("template nests too deeply", 1) from None
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        # Prompts are rendered without a loader: there are no other templates to load.
        tag = {"Extends": "extends", "Include": "include"}.get(type(node).__name__, "import")
        raise TemplateProblem(f"'{{% {tag} %}}' is not supported in prompts", node.lineno)
    ordered = []
    for name_node in names:
        if name_node.name in undeclared and name_node.name not in ordered:
            ordered.append(name_node.name)
    ordered.extend(sorted(undeclared - set(ordered)))
    return ordered


def _check_filters_and_tests(tree: nodes.Template, env: SandboxedEnvironment) -> None:
    """What Jinja's code generator would reject in an assignment-free template."""
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        kind, known = (
            ("filter", env.filters) if isinstance(node, nodes.Filter) else ("test", env.tests)
        )
        if node.name not in known:
            raise TemplateAssertionError(f"No {kind} named {node.name!r}.", node.lineno)


def static_prefix(source: str) -> str:
    """The template's text before its first `{{`, `{%` or `{#`: the same for every call."""
    cut = len(source)
    for opener in ("{{", "{%", "{#"):
        i = source.find(opener)
        if i >= 0:
            cut = min(cut, i)
    return source[:cut]


def line_offset(source: str, line: int) -> int:
    """Offset of the first character of 1-based `line` in `source`."""
    offset = 0
    for _ in range(line - 1):
        nxt = source.find("\n", offset)
        if nxt < 0:
            break
        offset = nxt + 1
    return offset
