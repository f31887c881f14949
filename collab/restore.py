"""Restoring a version: the live document's content becomes the version's, as a new
change on top of history (never by rewriting it, which would make clients that
reconnect with the old history duplicate content)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

RootType = type[Text] | type[Map[Any]] | type[Array[Any]] | type[XmlFragment]


def restore(live: Doc[Any], version_state: bytes) -> None:
    """Make every root of ``live`` equal to the same root in the version, in one
    transaction (one update for every peer)."""
    version: Doc[Any] = Doc()
    version.apply_update(version_state)
    names = set(version.keys()) | set(live.keys())
    live_state = live.get_update()
    kinds = {name: root_type(version_state, name) or root_type(live_state, name) for name in names}
    with live.transaction():
        for name, kind in kinds.items():
            if kind is None:
                continue  # empty in both: nothing to do
            target = live.get(name, type=kind)
            source = version.get(name, type=kind) if name in set(version.keys()) else None
            _replace(target, source)


def root_type(state: bytes, name: str) -> RootType | None:
    """The type of a root as the encoded state holds it, read from its content: a
    root decoded from bytes does not carry its type. None if the root is empty."""

    def view(kind: RootType) -> Any:
        doc: Doc[Any] = Doc()
        doc.apply_update(state)
        return doc.get(name, type=kind)

    if list(view(Map).keys()):
        return Map
    if str(view(Text)):
        return Text
    items = list(view(Array))
    if not items:
        return None
    if all(isinstance(item, XmlElement | XmlText) for item in items):
        return XmlFragment
    return Array


def _replace(target: Any, source: Any) -> None:
    if isinstance(target, Map):
        for key in list(target.keys()):
            if source is None or key not in source:
                del target[key]
        for key, value in source.items() if source is not None else ():
            target[key] = _copy(value)
    elif isinstance(target, Text):
        del target[0 : len(target)]
        if source is not None:
            _copy_text(source, target)
    elif isinstance(target, Array):
        del target[0 : len(target)]
        if source is not None:
            target.extend([_copy(value) for value in source])
    else:  # XmlFragment
        _clear_children(target)
        if source is not None:
            _copy_children(source, target)


def _copy(value: Any) -> Any:
    """A preliminary (not yet integrated) copy of a value held by a Map or Array."""
    if isinstance(value, Map):
        return Map({key: _copy(item) for key, item in value.items()})
    if isinstance(value, Array):
        return Array([_copy(item) for item in value])
    if isinstance(value, Text):
        return Text(str(value))
    return value


def _copy_text(source: Text | XmlText, target: Text | XmlText) -> None:
    for chunk, attributes in source.diff():
        # Explicit (possibly empty) attributes: without them an insert takes on the
        # formatting of the text before it.
        if isinstance(chunk, str):
            target.insert(len(target), chunk, attributes or {})
        else:
            target.insert_embed(len(target), chunk, attributes or {})


def _clear_children(node: XmlFragment | XmlElement) -> None:
    count = len(list(node.children))
    if count:
        del node.children[0:count]


def _attributes(element: XmlElement) -> dict[str, Any]:
    # pycrdt types the view's __iter__ as returning an Iterable, not an Iterator.
    return dict(cast(Iterable[tuple[str, Any]], element.attributes))


def _copy_children(source: XmlFragment | XmlElement, target: XmlFragment | XmlElement) -> None:
    for child in source.children:
        if isinstance(child, XmlText):
            text = target.children.append(XmlText())
            _copy_text(child, text)
        elif isinstance(child, XmlElement):
            element = target.children.append(XmlElement(child.tag, _attributes(child)))
            _copy_children(child, element)
