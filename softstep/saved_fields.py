"""The checks of a saved model's JSON fields, each problem one :class:`SavedModelError` line naming the file and the
field: plain values (:func:`plain`), required fields of a type or range (:func:`required_field`, :func:`int_field`,
:func:`finite_field`) and the lookup of a config node's ``_target_`` in a fixed table (:func:`config_target`,
:func:`config_arguments`): nothing named in a file is imported. A message never carries a control character from
the file (:func:`one_line`): a key holding a newline or a terminal escape cannot forge a line.
"""

from __future__ import annotations

import inspect
import math

FIX = "the file was changed or is not a saved model; save it again (SoftStepRegressor.save, or save_model=true)"


class SavedModelError(ValueError):
    """A saved model that cannot be read, or cannot do what was asked; the message names the file and field.

    Parameters
    ----------
    *args
        The one-line message.

    Examples
    --------
    >>> isinstance(SavedModelError("m.json: field head: missing"), ValueError)
    True
    >>> str(SavedModelError("m.json: field a\\nforged"))  # a key from the file cannot start a line
    'm.json: field a\\\\nforged'
    """

    def __init__(self, *args):
        super().__init__(*(one_line(a) if isinstance(a, str) else a for a in args))


def field_error(file, field: str, problem: str) -> SavedModelError:
    """The :class:`SavedModelError` for one field's problem: the file, the field, what is wrong, and what to do.

    Parameters
    ----------
    file : path-like
    field : str
        The field's dotted name in the file.
    problem : str

    Returns
    -------
    SavedModelError
        To raise.

    Examples
    --------
    >>> str(field_error("m.json", "label.lo", "missing"))[:32]
    'm.json: field label.lo: missing;'
    """
    return SavedModelError(f"{file}: field {field}: {problem}; {FIX}")


def plain(value, field: str, file, depth: int = 0):
    """``value`` if it is a plain JSON value, else a :class:`SavedModelError` naming the field.

    Plain: None, bool, int, a finite float, a string without an interpolation (``${``), or a list or dict of
    those (at most 100,000 entries, nested at most 4 deep).

    Parameters
    ----------
    value : object
    field : str
        Its name in the file, for the message.
    file : path-like
        The file, for the message.
    depth : int, default=0

    Returns
    -------
    object
        ``value`` itself.

    Examples
    --------
    >>> plain({"size": 224, "mean": [0.5]}, "config.dataset.loader", "m.json")
    {'size': 224, 'mean': [0.5]}
    """
    if value is None or isinstance(value, (bool, str, int)):
        if isinstance(value, str) and "${" in value:
            raise field_error(file, field, f"{value[:40]!r} is an interpolation, not a plain value")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise field_error(file, field, f"{value} is not a finite number")
        return value
    if isinstance(value, (list, dict)) and depth < 4 and len(value) <= 100_000:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            if isinstance(value, dict) and not isinstance(k, str):
                raise field_error(file, field, "keys must be strings")
            plain(v, f"{field}.{k}" if isinstance(value, dict) else f"{field}[{k}]", file, depth + 1)
        return value
    raise field_error(file, field, f"a {type(value).__name__} is not a plain setting")


def required_field(meta: dict, key: str, types, file, field: str | None = None):
    """``meta[key]`` if it is there and of ``types`` (a bool is not an int here), else a :class:`SavedModelError`.

    Parameters
    ----------
    meta : dict
    key : str
    types : type or tuple of types
    file : path-like
        The file, for the message.
    field : str, optional
        The field's dotted name in the file (default ``key``).

    Returns
    -------
    object
        ``meta[key]``.

    Examples
    --------
    >>> required_field({"in_dim": 3}, "in_dim", int, "m.json")
    3
    """
    field, types = field or key, types if isinstance(types, tuple) else (types,)
    if key not in meta:
        raise field_error(file, field, "missing")
    value = meta[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = "/".join(t.__name__ for t in types)
        raise field_error(file, field, f"expected {names}, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def int_field(meta: dict, key: str, lo: int, hi: int, file, field: str | None = None) -> int:
    """``meta[key]`` if it is an integer in [lo, hi] (:func:`required_field`), else a :class:`SavedModelError`.

    Parameters
    ----------
    meta : dict
    key : str
    lo, hi : int
    file : path-like
    field : str, optional

    Returns
    -------
    int

    Examples
    --------
    >>> int_field({"split": 2}, "split", 0, 9, "m.json")
    2
    """
    value = required_field(meta, key, int, file, field)
    if not lo <= value <= hi:
        raise field_error(file, field or key, f"{value} is outside [{lo}, {hi}]")
    return value


def finite_field(value, field: str, file) -> float:
    """``value`` as a float if it is a finite number (not a bool), else a :class:`SavedModelError`.

    Parameters
    ----------
    value : object
    field : str
    file : path-like

    Returns
    -------
    float

    Examples
    --------
    >>> finite_field(3, "label.lo", "m.json")
    3.0
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise field_error(file, field, f"an integer of {len(str(abs(value)))} digits; write it as a float")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise field_error(file, field, f"{str(value)[:40]!r} is not a finite number")
    return float(value)


def signature_arguments(fn) -> set:
    """The names ``fn`` takes by keyword (a config node may pass only these).

    Parameters
    ----------
    fn : callable

    Returns
    -------
    set of str

    Examples
    --------
    >>> sorted(signature_arguments(lambda a, *, b=1: None))
    ['a', 'b']
    """
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    }


def config_arguments(node, field: str, file, allowed: set, fixed: dict) -> dict:
    """The plain arguments of a config node (without ``_target_``), each one the function takes.

    Parameters
    ----------
    node : dict
    field : str
        The node's dotted name in the file.
    file : path-like
    allowed : set of str
        The arguments the function takes (:func:`signature_arguments`).
    fixed : dict
        The caller's own values, which replace stored ones.

    Returns
    -------
    dict
        The stored arguments that ``fixed`` does not replace.

    Examples
    --------
    >>> config_arguments({"_target_": "f", "size": 2, "seed": 0}, "n", "m.json", {"size", "seed"}, {"seed": 1})
    {'size': 2}
    """
    if not isinstance(node, dict):
        raise field_error(file, field, f"expected a mapping, got {type(node).__name__}")
    args = {k: plain(v, f"{field}.{k}", file) for k, v in node.items() if k != "_target_"}
    for k in args:
        if k not in allowed:
            raise field_error(
                file, f"{field}.{k}", f"not an argument it takes (allowed: {', '.join(sorted(allowed)) or 'none'})"
            )
    return {k: v for k, v in args.items() if k not in fixed}  # the caller's values replace the stored ones


def config_target(node, field: str, file, table: dict, what: str) -> str:
    """The node's ``_target_`` if it is a key of ``table``, else a :class:`SavedModelError` listing the keys.

    Parameters
    ----------
    node : object
    field : str
    file : path-like
    table : dict
        The targets allowed.
    what : str
        What they are, for the message.

    Returns
    -------
    str

    Examples
    --------
    >>> config_target({"_target_": "a.b"}, "config.x", "m.json", {"a.b": None}, "builders")
    'a.b'
    """
    name = node.get("_target_") if isinstance(node, dict) else None
    if not isinstance(name, str) or name not in table:
        raise field_error(
            file,
            f"{field}._target_",
            f"{str(name)[:80]!r} is not one of this project's {what} ({', '.join(sorted(table))})",
        )
    return name


def one_line(text: str) -> str:
    """``text`` with every control or line-separating character written as its escape (``\\n``, ``\\x1b``), so
    that a string from a file prints as one line and sends no terminal escape.

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Examples
    --------
    >>> print(one_line("a\\x1b[2J\\nforged"))
    a\\x1b[2J\\nforged
    """
    text = str(text)
    if all(c.isprintable() or c == " " for c in text):
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
