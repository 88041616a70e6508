"""Parse experiment YAML with bounded cost, and every failure as a positioned :class:`SpecError`.

An experiment file is untrusted input: it may be a fuzzer's output, a paste
with a stray NUL, or an "alias bomb" (nine anchors, each a list of ten
aliases to the previous one, expand to 10^9 nodes from 200 bytes).  PyYAML's
own loader builds such documents happily and leaves the explosion to
whoever walks the result (our position walker, pydantic, ``json.dumps``), and
several of its constructors raise bare ``KeyError``/``AttributeError``/
``ValueError`` without a position (``!!bool maybe``, ``!!timestamp x``).

So the loader here:

* refuses text longer than :data:`MAX_BYTES` before parsing anything;
* reports a non-printable character at its own LINE:COL (PyYAML gives an
  offset, not a line);
* bounds nesting depth (:data:`MAX_DEPTH`) while composing, before Python's
  recursion limit can turn it into a ``RecursionError`` at 1:1;
* counts the size of the document *as expanded through its aliases*
  (:data:`MAX_NODES`), in time proportional to the text, because each node
  remembers its own expanded size; the error points at the alias that went
  over the budget;
* refuses recursive aliases (a node that contains an alias to itself);
* turns any constructor failure into an error at the node's position.

The limits are far above any real experiment (the shipped ones are at most
about 2 KiB, 130 nodes and 5 levels deep) and are documented in docs/experiment.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, ScalarEvent

from mlchaos.spec.errors import SpecError, SpecErrors

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "check_size", "parse"]

#: Largest experiment accepted, in bytes of UTF-8 (request bodies belong in ``body_file``).
MAX_BYTES = 1024 * 1024
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 100
#: Most nodes (scalars, lists, mappings) in the document once every alias is expanded.
MAX_NODES = 250_000



class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python event parser, for builds without libyaml."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


# libyaml's event parser (when PyYAML was built with it) is 3-4x faster than the pure-Python
# one on big files; the composer, which does the counting, stays the Python one either way.
_Parser: Any = _PyParser
if yaml.__with_libyaml__:  # pragma: no branch
    from yaml._yaml import CParser

    _Parser = CParser

_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based LINE:COL of ``offset`` using YAML's line breaks (what PyYAML's marks count)."""
    line, start = 1, 0
    for m in _LINE_BREAK.finditer(text, 0, offset):
        line, start = line + 1, m.end()
    return line, offset - start + 1


def _short(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


class _BoundedLoader(Composer, _Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """A safe loader that counts expanded size and depth while composing and never raises unmarked."""

    def __init__(self, stream: str, variables: Mapping[str, str] | None = None) -> None:
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}
        self._vars = variables
        self.var_errors: list[tuple[int, int, str]] = []

    def _substitute(self, event: Any) -> None:
        """``${VAR}`` in a scalar, before the resolver types it (:mod:`mlchaos.spec.variables`)."""
        from mlchaos.spec.variables import substitute

        assert self._vars is not None
        value, errors = substitute(event.value, self._vars)
        mark: Any = event.start_mark
        for err in errors:
            col = mark.column + 1
            before = event.value[:err.offset]
            if "\n" not in before and "\\" not in before:  # the reference's own column on the scalar's line
                col += err.offset + (1 if event.style in ("'", '"') else 0)
            self.var_errors.append((mark.line + 1, col, str(err)))
        event.value = value

    def _grow(self, n: int, event: Any) -> None:
        self._expanded += n
        mark: Any = event.start_mark
        if self._expanded > MAX_NODES:
            what = f"alias *{event.anchor} expands" if isinstance(event, AliasEvent) else "the document has"
            raise ComposerError(None, None, f"{what} past {MAX_NODES:,} nodes once aliases are expanded "
                                "(an 'alias bomb'?); write the data out or shrink it", mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()
        mark: Any = event.start_mark
        if self._vars is not None and isinstance(event, ScalarEvent) and "$" in event.value:
            self._substitute(event)
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # the anchored node is still being composed: it contains itself
                raise ComposerError(None, None, f"recursive alias *{event.anchor}: the anchored node contains it",
                                    mark)
            self._grow(size, event)
            return node
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels", mark)
        before = self._expanded
        self._grow(1, event)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._expanded - before
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, KeyError, AttributeError, TypeError, OverflowError, IndexError) as exc:
            shown = f" {_short(node.value)}" if isinstance(node, yaml.ScalarNode) else ""
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            detail = f": {exc}" if isinstance(exc, ValueError) and str(exc) else ""
            raise ConstructorError(None, None, f"invalid {tag} value{shown}{detail}", node.start_mark) from None


def check_size(text: str, source: str) -> None:
    """Refuse text over :data:`MAX_BYTES` (counted cheaply: characters first, bytes only near the limit)."""
    if len(text) > MAX_BYTES or (len(text) > MAX_BYTES // 4 and len(text.encode("utf-8", "replace")) > MAX_BYTES):
        raise SpecErrors([SpecError(source, 1, 1, "", f"file too large: more than {MAX_BYTES:,} bytes "
                                    "(request bodies belong in a body_file)")])


def parse(text: str, source: str, variables: Mapping[str, str] | None = None) -> tuple[yaml.Node, Any]:
    """Return (root node, constructed data); raise :class:`SpecErrors` for anything else.

    With ``variables``, every scalar's ``${NAME}`` is substituted before YAML types it
    (:mod:`mlchaos.spec.variables`); undefined ones are errors at their position.
    """
    check_size(text, source)
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad:  # PyYAML would report an offset, libyaml a byte offset: give LINE:COL
        line, col = _line_col(text, bad.start())
        raise SpecErrors([SpecError(source, line, col, "", f"invalid YAML: unacceptable character "
                                    f"U+{ord(bad.group()):04X}: control characters are not allowed")])
    loader = _BoundedLoader(text, variables)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecErrors([SpecError(source, 1, 1, "", "empty document: expected an experiment mapping")])
        if loader.var_errors:
            raise SpecErrors([SpecError(source, line, col, "", msg) for line, col, msg in loader.var_errors])
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        raise SpecErrors([SpecError(source, line, col, "", f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise SpecErrors([SpecError(source, 1, 1, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:  # unreachable with MAX_DEPTH, kept so no traceback can ever escape
        raise SpecErrors([SpecError(source, 1, 1, "", "invalid YAML: nested too deeply")]) from None
    finally:
        loader.dispose()
