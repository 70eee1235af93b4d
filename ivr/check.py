"""Checks of IVR flows before they run: every message says where and what to do.

Pure: flows in, issues out. `check(flows, prompts, queues)` finds targets that do not
exist, nodes never reached, loops the caller cannot leave (or that would spin without
waiting for a key), queues and prompts that do not exist, keys that are not DTMF keys,
and survey and callback nodes in flows where they cannot work.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ivr.flow import (
    DTMF_KEYS,
    END_NODES,
    FOUND_SOUNDS,
    INPUT_NODES,
    LANGUAGES,
    Callback,
    CallerIn,
    Collect,
    Condition,
    Enqueue,
    Flow,
    Flows,
    Goto,
    Hangup,
    IsOpen,
    Item,
    Language,
    Menu,
    Node,
    Play,
    SayTicket,
    Set,
    Sound,
    Survey,
    Transfer,
    WaitOver,
    targets,
)

Where = tuple[str, str]  # (flow, node id)


@dataclass(frozen=True)
class Issue:
    flow: str
    node: str  # "" when about the flow itself
    line: int  # 1-based YAML line; 0 for flows built in code
    message: str

    def __str__(self) -> str:
        where = f"flow {self.flow}" + (f", node {self.node}" if self.node else "")
        return f"line {self.line}: {where}: {self.message}" if self.line else f"{where}: {self.message}"


def check(flows: Flows, prompts: Mapping[str, frozenset[str]] | None, queues: set[str]) -> list[Issue]:
    """Everything wrong with these flows, in line order.

    prompts: language -> the prompt names available in it; None: prompts are not checked.
    queues: the queues configured (queues.yaml).
    """
    issues: list[Issue] = []
    for flow in flows.flows.values():
        issues += _targets(flow, flows)
        issues += _unreachable(flow)
        for node in flow.nodes.values():
            issues += _node(flow, node, flows, queues)
    issues += _loops(flows)
    issues += _placement(flows)
    if prompts is not None:
        issues += _prompts(flows, prompts)
    return sorted(issues, key=lambda i: (i.line, i.flow, i.node, i.message))


def _near(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} (known: {', '.join(known) or 'none'})"


def _targets(flow: Flow, flows: Flows) -> list[Issue]:
    out: list[Issue] = []
    if flow.start not in flow.nodes:
        out.append(Issue(flow.name, "", flow.lines.get("start", flow.line),
                         f"start: {flow.start!r} is not a node of flow {flow.name}{_near(flow.start, flow.nodes)}; "
                         "add the node or correct the name"))
    for node in flow.nodes.values():
        for key, target in targets(node):
            if target not in flow.nodes:
                out.append(Issue(flow.name, node.id, node.at(key),
                                 f"{key} goes to {target!r}, which is not a node of flow {flow.name}"
                                 f"{_near(target, flow.nodes)}; add the node or correct the name"))
        if isinstance(node, Goto) and node.flow not in flows.flows:
            out.append(Issue(flow.name, node.id, node.at("flow"),
                             f"goto: there is no flow named {node.flow!r}{_near(node.flow, flows.flows)}; "
                             "add the flow under `flows:` or correct the name"))
    return out


def _reach(flow: Flow) -> list[str]:
    """Node ids reachable from the start, in the order found."""
    seen: list[str] = []
    todo = [flow.start] if flow.start in flow.nodes else []
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.append(node_id)
        todo += [t for _, t in reversed(targets(flow.nodes[node_id])) if t in flow.nodes and t not in seen]
    return seen


def _unreachable(flow: Flow) -> list[Issue]:
    if flow.start not in flow.nodes:
        return []  # already said: the start is missing
    reached = set(_reach(flow))
    return [Issue(flow.name, n.id, n.line, f"never reached from the start ({flow.start}): link it from another "
                                           "node or delete it")
            for n in flow.nodes.values() if n.id not in reached]


def _node(flow: Flow, node: Node, flows: Flows, queues: set[str]) -> list[Issue]:
    out: list[Issue] = []

    def say(key: str, message: str) -> None:
        out.append(Issue(flow.name, node.id, node.at(key), message))

    def queue(key: str, name: str | None) -> None:
        if name is not None and name not in queues:
            say(key, f"queue {name!r} is not configured{_near(name, queues)}; add it to queues.yaml or correct "
                     "the name")

    match node:
        case Menu():
            seen: set[str] = set()
            for key, _ in node.options:
                if key not in DTMF_KEYS:
                    say(f"options.{key}", f"option {key!r} is not a phone key: use one of 0-9, * or # "
                                          "(write * and # in quotes)")
                if key in seen:
                    say(f"options.{key}", f"key {key!r} is given twice; keep one")
                seen.add(key)
        case Collect():
            if node.min_digits > node.max_digits:
                say("min_digits", f"min_digits ({node.min_digits}) is more than max_digits ({node.max_digits}); "
                                  "no entry could be right: lower min_digits or raise max_digits")
            if node.terminator not in ("#", "*", ""):
                say("terminator", f"terminator {node.terminator!r} must be \"#\", \"*\" or \"\" (none)")
        case Callback():
            for key in ("accept", "other"):
                value = getattr(node, key)
                if value not in DTMF_KEYS:
                    say(key, f"{key}: {value!r} is not a phone key: use one of 0-9, * or #")
            if node.accept == node.other:
                say("other", f"key {node.other!r} is given twice (accept and other); give them different keys")
            if node.min_digits > node.max_digits:
                say("min_digits", f"min_digits ({node.min_digits}) is more than max_digits ({node.max_digits}); "
                                  "lower min_digits or raise max_digits")
        case Survey():
            if node.scale not in (3, 5):
                say("scale", f"scale {node.scale}: a survey's scale is 3 (满意/一般/不满意) or 5 (好差评); "
                             "use 3 or 5")
        case Condition():
            test = node.test
            if isinstance(test, IsOpen | WaitOver):
                queue("open" if isinstance(test, IsOpen) else "wait_over", test.queue)
            if isinstance(test, CallerIn) and test.name not in flows.lists:
                say("caller_in", f"there is no caller list named {test.name!r}{_near(test.name, flows.lists)}; "
                                 "define it under `lists:`")
        case Set():
            queue("queue", node.queue)
        case Enqueue():
            queue("queue", node.queue)
        case SayTicket():
            if not any(_stores(other, node.var) for f in flows.flows.values() for other in f.nodes.values()):
                say("var", f"reads the ticket number from {node.var!r}, which no collect or set node stores; "
                           f"give the collect that asks for it `var: {node.var}`")
        case Play() | Transfer() | Hangup() | Goto():
            pass
    return out


def _stores(node: Node, var: str) -> bool:
    return (isinstance(node, Collect) and node.var == var) or (isinstance(node, Set) and var in dict(node.vars))


# -- loops -------------------------------------------------------------------------------------

def _edges(flows: Flows) -> dict[Where, list[Where]]:
    graph: dict[Where, list[Where]] = {}
    for flow in flows.flows.values():
        for node in flow.nodes.values():
            nexts = [(flow.name, t) for _, t in targets(node) if t in flow.nodes]
            if isinstance(node, Goto) and node.flow in flows.flows:
                other = flows.flows[node.flow]
                if other.start in other.nodes:
                    nexts.append((other.name, other.start))
            graph[(flow.name, node.id)] = nexts
    return graph


def _components(graph: Mapping[Where, list[Where]]) -> list[list[Where]]:
    """Strongly connected components (Tarjan, without recursion), each a loop or a single node."""
    index: dict[Where, int] = {}
    low: dict[Where, int] = {}
    stack: list[Where] = []
    on_stack: set[Where] = set()
    out: list[list[Where]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[Where, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            succ = graph.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                component: list[Where] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def _is_loop(component: list[Where], graph: Mapping[Where, list[Where]]) -> bool:
    return len(component) > 1 or component[0] in graph.get(component[0], [])


def _loops(flows: Flows) -> list[Issue]:
    graph = _edges(flows)

    def node(w: Where) -> Node:
        return flows.flows[w[0]].nodes[w[1]]

    # Nodes from which an end (enqueue, transfer, hangup) can be reached.
    back: dict[Where, list[Where]] = {w: [] for w in graph}
    for v, nexts in graph.items():
        for w in nexts:
            back[w].append(v)
    ends = [w for w in graph if isinstance(node(w), END_NODES)]
    can_end = set(ends)
    todo = list(ends)
    while todo:
        for v in back[todo.pop()]:
            if v not in can_end:
                can_end.add(v)
                todo.append(v)

    out: list[Issue] = []

    def report(component: list[Where], message: str) -> None:
        first = min(component, key=lambda w: (node(w).line, w))
        names = ", ".join(f"{f}.{n}" if f != first[0] else n for f, n in sorted(component))
        out.append(Issue(first[0], first[1], node(first).line, message.format(names=names)))

    for component in _components(graph):
        if _is_loop(component, graph) and not any(w in can_end for w in component):
            report(component, "nodes {names} loop with no way out to an enqueue, transfer or hangup node: the "
                              "caller would be stuck; give one of them a path to an end")
    # A caller who presses nothing: the paths taken without a key (a menu's timeout or failure,
    # a collect's failure, a survey with no rating, a declined callback, and every node that
    # waits for nothing). A loop of those that cannot reach an end holds a silent caller until
    # the loop guard: a menu whose on_timeout is itself, say.
    silent = _silent_edges(flows, graph)
    silent_end = set(ends)
    back_silent: dict[Where, list[Where]] = {w: [] for w in silent}
    for v, nexts in silent.items():
        for w in nexts:
            back_silent.setdefault(w, []).append(v)
    todo = list(ends)
    while todo:
        for v in back_silent.get(todo.pop(), []):
            if v not in silent_end:
                silent_end.add(v)
                todo.append(v)
    for component in _components(silent):
        if (_is_loop(component, silent) and any(w in can_end for w in component)
                and not any(w in silent_end for w in component)):
            report(component, "a caller who presses nothing goes round {names} for ever (no timeout or failure "
                              "path leads to an end): give the loop an on_timeout or on_fail that ends, "
                              "e.g. the queue")
    # Without the nodes that wait for keys, what still loops would spin on its own.
    still = {v: [w for w in nexts if not isinstance(node(w), INPUT_NODES)]
             for v, nexts in graph.items() if not isinstance(node(v), INPUT_NODES)}
    for component in _components(still):
        if _is_loop(component, still):
            report(component, "nodes {names} loop without a menu, collect, survey or callback node to wait "
                              "for the caller: the flow would go round until the loop guard sends the caller "
                              "to the queue; put an input node in the loop or break it")
    return out


def _silent_edges(flows: Flows, graph: Mapping[Where, list[Where]]) -> dict[Where, list[Where]]:
    """The edges a caller who presses no key can take."""
    out: dict[Where, list[Where]] = {}
    for w, nexts in graph.items():
        node = flows.flows[w[0]].nodes[w[1]]
        match node:
            case Menu():
                quiet = {node.on_timeout} if node.on_timeout else {node.on_fail}
            case Collect() | SayTicket():
                quiet = {node.on_fail}
            case Callback():
                quiet = {node.declined}
            case Survey():
                quiet = {node.next}
            case _:
                out[w] = list(nexts)
                continue
        out[w] = [(w[0], t) for t in quiet if (w[0], t) in graph]
    return out


# -- survey and callback placement -----------------------------------------------------------

def _after_call(flows: Flows) -> set[str]:
    """The survey flow and the flows it goes to: they run after the agent has hung up."""
    found: set[str] = set()
    todo = [flows.survey] if flows.survey is not None else []
    while todo:
        name = todo.pop()
        if name in found or name not in flows.flows:
            continue
        found.add(name)
        todo += [n.flow for n in flows.flows[name].nodes.values() if isinstance(n, Goto)]
    return found


def _placement(flows: Flows) -> list[Issue]:
    if flows.survey is None:
        return []
    after = _after_call(flows)
    out: list[Issue] = []
    for flow in flows.flows.values():
        for node in flow.nodes.values():
            if isinstance(node, Survey) and flow.name not in after:
                out.append(Issue(flow.name, node.id, node.line,
                                 f"a survey only works in the survey flow ({flows.survey}), which runs after the "
                                 "agent hangs up; here no agent has answered yet: move it there"))
            if isinstance(node, Callback) and flow.name in after:
                out.append(Issue(flow.name, node.id, node.line,
                                 "a callback is offered while the caller waits for an agent; this flow runs after "
                                 "the call, when there is nothing left to call back about: remove it"))
    return out


# -- prompts -----------------------------------------------------------------------------------

def languages(flows: Flows) -> dict[Where, set[Language]]:
    """The languages the caller may hear at each node: zh from every flow's start, and a
    language `set` on the way there."""
    at: dict[Where, set[Language]] = {}
    todo: list[tuple[Where, Language]] = []
    for flow in flows.flows.values():
        if flow.start in flow.nodes:
            todo.append(((flow.name, flow.start), "zh"))
    graph = _edges(flows)
    while todo:
        w, lang = todo.pop()
        if lang in at.setdefault(w, set()):
            continue
        at[w].add(lang)
        node = flows.flows[w[0]].nodes[w[1]]
        out_lang = node.language if isinstance(node, Set) and node.language is not None else lang
        todo += [(v, out_lang) for v in graph.get(w, [])]
    return at


def needed_sounds(node: Node) -> list[tuple[str, str]]:
    """(key in the node, prompt name) of every recorded prompt the node may play."""
    def of(key: str, items: tuple[Item, ...]) -> list[tuple[str, str]]:
        return [(f"{key}.{i}", item.name) for i, item in enumerate(items) if isinstance(item, Sound)]

    match node:
        case Play() | Hangup():
            return of("prompts", node.prompts)
        case Menu() | Collect():
            return of("prompts", node.prompts) + of("invalid", node.invalid) + of("no_input", node.no_input)
        case Callback():
            return (of("prompts", node.prompts) + of("own_number", node.own_number)
                    + of("enter_number", node.enter_number) + of("confirm", node.confirm)
                    + of("invalid", node.invalid) + of("no_input", node.no_input))
        case Survey():
            return (of("prompts", node.prompts) + of("invalid", node.invalid) + of("no_input", node.no_input)
                    + of("thanks", node.thanks) + of("no_rating", node.no_rating))
        case SayTicket():
            # The state's own prompt (state-<state>) depends on the ticket: not checked here.
            return of("not_found", node.not_found) + [("", name) for name in FOUND_SOUNDS]
        case Condition() | Set() | Enqueue() | Transfer() | Goto():
            return []


def _prompts(flows: Flows, prompts: Mapping[str, frozenset[str]]) -> list[Issue]:
    out: list[Issue] = []
    for (flow_name, node_id), langs in languages(flows).items():
        node = flows.flows[flow_name].nodes[node_id]
        for lang in sorted(langs, key=LANGUAGES.index):
            have = prompts.get(lang, frozenset())
            for key, name in needed_sounds(node):
                if name not in have:
                    out.append(Issue(flow_name, node_id, node.at(key) if key else node.line,
                                     f"prompt {name!r} has no {lang} recording; add {name} for {lang} to the "
                                     "prompts (or the override folder) or use another prompt"))
    return out
