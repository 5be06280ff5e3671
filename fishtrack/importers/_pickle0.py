"""Read the *text* of a protocol-0 pickle that holds only plain literals - without unpickling.

pandas' HDF5 "table" format (what DeepLabCut writes: ``df.to_hdf(..., "df_with_missing",
format="table")``) keeps the column labels only in PyTables attributes, which PyTables stores
as protocol-0 pickles, e.g. ``(lp0\\n(Vscorer\\np1\\nVhead\\np2\\ntp3\\na.``. Reading the file
with pandas or PyTables would unpickle them (and so run whatever a crafted file contains).

:func:`literal_from_pickle0` interprets that text itself and accepts only the opcodes that
build lists, tuples, dicts, strings, numbers, booleans and None. Any other opcode - a global
lookup, a call, an object build, a binary protocol - raises :class:`UnsafePickle`, so nothing
but plain data is ever produced and no code can run.
"""

from __future__ import annotations

import ast

__all__ = ["UnsafePickle", "literal_from_pickle0"]


class UnsafePickle(ValueError):
    """The bytes are not a protocol-0 pickle of plain literals."""


_MARK = object()


def literal_from_pickle0(data: bytes) -> object:
    """The value a protocol-0 pickle of plain literals encodes (see the module docstring)."""
    if not isinstance(data, bytes | bytearray):
        raise UnsafePickle("not bytes")
    if data[:1] == b"\x80":
        raise UnsafePickle("binary pickle protocol (only plain protocol-0 text is read)")
    lines = bytes(data).split(b"\n")
    stack: list[object] = []
    memo: dict[str, object] = {}
    i = 0
    # each opcode is one character, followed by an argument up to the end of the line for
    # the opcodes that take one
    pos_line, pos_col = 0, 0

    def next_char() -> str:
        nonlocal pos_line, pos_col
        while pos_line < len(lines):
            line = lines[pos_line]
            if pos_col < len(line):
                c = chr(line[pos_col])
                pos_col += 1
                return c
            pos_line += 1
            pos_col = 0
        raise UnsafePickle("truncated pickle (no STOP)")

    def rest_of_line() -> bytes:
        nonlocal pos_line, pos_col
        if pos_line >= len(lines):
            raise UnsafePickle("truncated pickle")
        arg = lines[pos_line][pos_col:]
        pos_line += 1
        pos_col = 0
        return arg

    def pop_mark() -> list[object]:
        for k in range(len(stack) - 1, -1, -1):
            if stack[k] is _MARK:
                items = stack[k + 1 :]
                del stack[k:]
                return items
        raise UnsafePickle("no MARK")

    while True:
        i += 1
        if i > 10_000_000:
            raise UnsafePickle("pickle too long")
        op = next_char()
        if op == "(":
            stack.append(_MARK)
        elif op == "l":
            stack.append(pop_mark())
        elif op == "t":
            stack.append(tuple(pop_mark()))
        elif op == "d":
            items = pop_mark()
            if len(items) % 2:
                raise UnsafePickle("odd DICT")
            stack.append({items[k]: items[k + 1] for k in range(0, len(items), 2)})  # type: ignore[index]
        elif op == "]":
            stack.append([])
        elif op == ")":
            stack.append(())
        elif op == "}":
            stack.append({})
        elif op == "a":
            v = stack.pop()
            lst = stack[-1]
            if not isinstance(lst, list):
                raise UnsafePickle("APPEND to a non-list")
            lst.append(v)
        elif op == "e":
            items = pop_mark()
            lst = stack[-1]
            if not isinstance(lst, list):
                raise UnsafePickle("APPENDS to a non-list")
            lst.extend(items)
        elif op == "s":
            v = stack.pop()
            k = stack.pop()
            dct = stack[-1]
            if not isinstance(dct, dict):
                raise UnsafePickle("SETITEM on a non-dict")
            dct[k] = v  # type: ignore[index]
        elif op == "u":
            items = pop_mark()
            dct = stack[-1]
            if not isinstance(dct, dict) or len(items) % 2:
                raise UnsafePickle("bad SETITEMS")
            for k in range(0, len(items), 2):
                dct[items[k]] = items[k + 1]  # type: ignore[index]
        elif op == "V":
            stack.append(rest_of_line().decode("raw-unicode-escape"))
        elif op == "S":
            raw = rest_of_line().decode("ascii", "strict")
            if len(raw) < 2 or raw[0] not in "'\"" or raw[-1] != raw[0]:
                raise UnsafePickle("bad STRING")
            stack.append(ast.literal_eval("b" + raw).decode("latin-1"))
        elif op in "IL":
            raw = rest_of_line().decode("ascii").rstrip("L")
            if raw == "00":
                stack.append(False)
            elif raw == "01":
                stack.append(True)
            else:
                stack.append(int(raw))
        elif op == "F":
            stack.append(float(rest_of_line().decode("ascii")))
        elif op == "N":
            stack.append(None)
        elif op == "p":
            if not stack:
                raise UnsafePickle("PUT on an empty stack")
            memo[rest_of_line().decode("ascii")] = stack[-1]
        elif op == "g":
            key = rest_of_line().decode("ascii")
            if key not in memo:
                raise UnsafePickle("GET of an unknown memo key")
            stack.append(memo[key])
        elif op == "0":
            stack.pop()
        elif op == ".":
            if len(stack) != 1 or stack[0] is _MARK:
                raise UnsafePickle("bad final stack")
            return stack[0]
        else:
            raise UnsafePickle(f"opcode {op!r} is not a plain literal (refused)")
