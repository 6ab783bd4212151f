"""The destroy handler's validation, made local where the change is one node made in place.

After ``add_destroy_handler``, every ``replace_all_validate`` asks PyTensor's
``DestroyHandler.validate`` whether the graph is still computable: it rebuilds the orderings
in-place Ops impose (every reader of a destroyed variable, or of a view of it, runs before
its destroyer) and walks the whole graph for a cycle. The in-place passes try every
``Elemwise`` node that way, one full walk per try: 5-35% of a PyMC model's cold rewriting.

The graph a validation sees differs from the last one that passed by one replacement in
almost every try: node ``N`` became ``N'``, the same ``Op`` with a ``destroy_map``, on the
same inputs. If the last graph was consistent, the new one can only fail on what ``N'``
adds: its destroyed roots (each destroyed once, not indestructible, not aliased by another
input of ``N'``) and the new orderings ``R -> N'`` for each reader ``R`` of them, which close
a cycle only if ``N'`` reaches some ``R``. ``accepts`` checks exactly that and accepts;
anything else (another kind of change, any doubt, a failure) is PyTensor's full
validation, so an inconsistent graph is always refused by PyTensor's own code with its own
error. The graphs that come out are the same (``tests/test_lean_rewriting.py`` runs both
on every validation of generated graphs and corpus models).

Which changes happened since the last validation that passed is recorded by the destroy
handler's own callbacks (``on_import``, ``on_prune``, ``on_change_input``) in a journal
kept beside it; a change made outside ``lean_rewriting.rewriting()`` drops the journal.
What the callbacks do not see is not in it: a rewrite that edits ``node.inputs`` directly
or marks a variable ``tag.indestructible`` after it was validated (nothing in PyTensor,
PyMC or aotkernels does either) would not be re-checked before the next full validation.
"""

from __future__ import annotations

import weakref

from pytensor.graph.basic import Constant
from pytensor.graph.destroyhandler import DestroyHandler
from pytensor.graph.utils import InconsistencyError

from aotkernels.pytensor import lean_rewriting

#: the validation callback (PyTensor 2.38: ``validate``, 3.0: ``on_validate``)
VALIDATE = "validate" if hasattr(DestroyHandler, "validate") else "on_validate"
PYTENSOR_VALIDATE = getattr(DestroyHandler, VALIDATE)
_PYTENSOR_ON_IMPORT = DestroyHandler.on_import
_PYTENSOR_ON_PRUNE = DestroyHandler.on_prune
_PYTENSOR_ON_CHANGE_INPUT = DestroyHandler.on_change_input
#: a journal longer than this (many changes without a validation) is dropped
_MAX_EVENTS = 64

#: id(destroy handler) -> the changes since its last validation that passed, or None when
#: that is not known (an entry goes with its handler: ``weakref.finalize``)
_JOURNALS: dict[int, list | None] = {}
#: validations accepted here and passed to PyTensor (tests and benchmarks read them)
stats = {"accepted": 0, "full": 0}


def destroyers(handler: DestroyHandler):
    """The handler's in-place nodes (PyTensor 2.38: ``destroyers``, 3.0: ``_destroying_apps``)."""
    apps = handler.__dict__.get("_destroying_apps")
    return handler.__dict__["destroyers"] if apps is None else apps


def validate(self: DestroyHandler, fgraph) -> bool:
    """``DestroyHandler.validate``: ``accepts`` if it can, PyTensor's otherwise."""
    key = id(self)
    journal = _JOURNALS.get(key)
    if journal is not None and lean_rewriting.active():
        try:
            ok = accepts(self, fgraph, journal)
        except Exception:  # any doubt is PyTensor's to settle
            ok = False
        if ok:
            journal.clear()
            stats["accepted"] += 1
            return True
    if key in _JOURNALS:
        _JOURNALS[key] = None
    stats["full"] += 1
    result = PYTENSOR_VALIDATE(self, fgraph)  # raises on an inconsistent graph
    # a base for the next one only if PyTensor walked this graph for cycles
    if lean_rewriting.active() and self.algo != "fast" and destroyers(self):
        if key not in _JOURNALS:
            weakref.finalize(self, _JOURNALS.pop, key, None)
        _JOURNALS[key] = []
    return result


def accepts(handler: DestroyHandler, fgraph, journal: list) -> bool:
    """True if the journal is one replacement of ``N`` by an in-place ``N'`` on the same
    inputs and the graph after it is consistent given that the graph before it was."""
    if len(journal) < 2:
        return False
    imported = [e[1] for e in journal if e[0] == "import"]
    pruned = [e[1] for e in journal if e[0] == "prune"]
    if len(imported) != 1 or len(pruned) != 1:
        return False
    new, old = imported[0], pruned[0]
    if (len(new.inputs) != len(old.inputs) or len(new.outputs) != len(old.outputs)
            or any(a is not b for a, b in zip(new.inputs, old.inputs))
            or old.op.destroy_map or old.op.view_map or new.op.view_map
            or not new.op.destroy_map or new not in fgraph.apply_nodes
            or old in fgraph.apply_nodes):
        return False
    moved = {id(o): n for o, n in zip(old.outputs, new.outputs)}
    for event in journal:
        if event[0] == "change" and moved.get(id(event[3])) is not event[4]:
            return False
    try:  # PyTensor's own build of the roots refuses a root destroyed twice
        droot, impact, root_destroyer = handler.refresh_droot_impact()
    except InconsistencyError:
        return False
    readers = set()
    for indices in new.op.destroy_map.values():
        if len(indices) != 1:
            return False
        index = indices[0]
        destroyed = new.inputs[index]
        root = droot.get(destroyed)
        if root is None or root_destroyer.get(root) is not new:
            return False
        root_impact = impact[root]
        if any(getattr(v.tag, "indestructible", False) or isinstance(v, Constant)
               for v in root_impact):
            return False
        if aliased(new, index, destroyed, root_impact):
            return False
        for v in root_impact:
            for app, count in handler.clients.get(v, {}).items():
                if not count:
                    return False
                readers.add(app)
    readers.discard(new)
    return not readers or not reaches(fgraph, new, readers, droot, root_destroyer)


def aliased(app, index: int, destroyed, root_impact) -> bool:
    """Whether another input of ``app`` views what it destroys (PyTensor's "Input
    aliasing", with the Op's tolerated pairs)."""
    op = app.op
    same = getattr(op, "destroyhandler_tolerate_same", [])
    alias = getattr(op, "destroyhandler_tolerate_aliased", [])
    if not isinstance(same, list) or not isinstance(alias, list):
        return True  # PyTensor asserts they are lists: its validation decides
    tolerated = {j for i, j in same if i == index}
    tolerated.add(index)
    ignored = {j for i, j in alias if i == index}
    return any(i not in ignored and v in root_impact
               and (i not in tolerated or v is not destroyed)
               for i, v in enumerate(app.inputs))


def reaches(fgraph, start, targets: set, droot: dict, root_destroyer: dict) -> bool:
    """Whether a path from ``start`` (data edges, and the edge from every reader of a
    destroyed variable or its views to the destroyer) meets ``targets`` or ``start``."""
    clients = fgraph.clients
    seen = {start}
    stack = [start]
    while stack:
        node = stack.pop()
        following = [c for out in node.outputs for c, _ in clients.get(out, ())]
        for w in node.inputs:
            root = droot.get(w)
            if root is not None:
                following.append(root_destroyer[root])
        for nxt in following:
            if nxt is node:
                continue
            if nxt in targets or nxt is start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


def _note(handler: DestroyHandler, event: tuple) -> None:
    journal = _JOURNALS.get(id(handler))
    if journal is None:
        return
    if len(journal) >= _MAX_EVENTS or not lean_rewriting.active():
        _JOURNALS[id(handler)] = None
    else:
        journal.append(event)


def on_import(self: DestroyHandler, fgraph, app, reason) -> None:
    _PYTENSOR_ON_IMPORT(self, fgraph, app, reason)
    _note(self, ("import", app))


def on_prune(self: DestroyHandler, fgraph, app, reason) -> None:
    _PYTENSOR_ON_PRUNE(self, fgraph, app, reason)
    _note(self, ("prune", app))


def on_change_input(self: DestroyHandler, fgraph, app, i, old_r, new_r, reason) -> None:
    _PYTENSOR_ON_CHANGE_INPUT(self, fgraph, app, i, old_r, new_r, reason)
    _note(self, ("change", app, i, old_r, new_r))


#: name -> (class, attribute, PyTensor's, this module's): what ``install`` swaps
SWAPS = {
    "validate": (DestroyHandler, VALIDATE, PYTENSOR_VALIDATE, validate),
    "on_import": (DestroyHandler, "on_import", _PYTENSOR_ON_IMPORT, on_import),
    "on_prune": (DestroyHandler, "on_prune", _PYTENSOR_ON_PRUNE, on_prune),
    "on_change_input": (DestroyHandler, "on_change_input", _PYTENSOR_ON_CHANGE_INPUT,
                        on_change_input),
}


def install() -> None:
    """Put ``validate`` and the journal's callbacks in PyTensor's place (once)."""
    lean_rewriting.swap_in(SWAPS)
