#!/usr/bin/env python3
"""Lists import cycles between the Rust files of each crate (src/ and crates/*/src).

A file depends on another when its code (comments, strings and `#[cfg(test)]` modules aside) names an item of
that file: through `use crate::…`, `super::…`, `self::…`, a `pub use` re-export followed
to the file that defines the item, or a path written inline (`crate::db::run(…)`). Edges
between a module file and its own children (`db/mod.rs` and `db/pool.rs`) are left out:
a parent declares and re-exports its children. Exit status 1 when there is a cycle.

    python3 scripts/import-cycles.py            # every crate of the workspace (from its top)
    python3 scripts/import-cycles.py src        # one crate's source root
"""

import re
import sys
from pathlib import Path

USE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.S)
INLINE = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def strip(code):
    """Removes comments, string and char literals (so that a path in a doc comment or a
    message is no dependency), keeping line structure."""
    out, i, n = [], 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if code.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif code.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', code[i:]):
            hashes = re.match(r"r(#*)\"", code[i:]).group(1)
            end = code.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and code[i] != '"':
                i += 2 if code[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(?:\\.|[^\\'])'", code[i:]):
            i += len(re.match(r"'(?:\\.|[^\\'])'", code[i:]).group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_tests(code):
    """Drops `#[cfg(test)] mod … { … }`: unit tests may use what they test from anywhere."""
    while True:
        match = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
        if not match:
            return code
        depth, i = 1, match.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        code = code[: match.start()] + code[i:]


def source(path):
    return without_tests(strip(path.read_text()))


def expand(tree):
    """`a::{b, c::{d, e as f}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    # Renames go first, while `as` is still a word of its own (a name may contain "as").
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rfind("}")]
    parts, depth, current = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    if current:
        parts.append(current)
    return [p for part in parts if part for p in expand(head + part)]


class Crate:
    def __init__(self, root):
        self.root = root
        self.files = {}  # module path tuple -> file
        entry = root / "lib.rs" if (root / "lib.rs").exists() else root / "main.rs"
        self.load((), entry)

    def load(self, module, path):
        self.files[module] = path
        code = source(path)
        base = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
        for name in MOD.findall(code):
            for child in (base / f"{name}.rs", base / name / "mod.rs"):
                if child.exists():
                    self.load(module + (name,), child)

    def module_of(self, path):
        return next(m for m, p in self.files.items() if p == path)

    def resolve(self, module, path, seen=()):
        """The file defining what `path` (as written in `module`) names, or None."""
        segments = path.split("::")
        if segments[0] == "crate":
            target, segments = (), segments[1:]
        elif segments[0] in ("super", "self"):
            target = module
            while segments and segments[0] in ("super", "self"):
                if segments[0] == "super":
                    target = target[:-1]
                segments = segments[1:]
        else:
            return None
        # The longest module prefix that is a file; the rest names an item in it.
        while segments and target + (segments[0],) in self.files:
            target, segments = target + (segments[0],), segments[1:]
        if segments and segments[0] != "*" and (target, segments[0]) not in seen:
            reexport = self.reexport(target, segments[0])
            if reexport:
                return self.resolve(target, reexport, seen + ((target, segments[0]),)) or self.files[target]
        return self.files[target]

    def reexport(self, module, name):
        """The path `module` re-exports `name` from (`pub use path::name;`), if it does."""
        code = source(self.files[module])
        for match in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", code, re.S):
            for path in expand(match.group(1)):
                if path.split("::")[-1] == name or path.endswith("::" + name):
                    return path
        return None

    def edges(self):
        graph = {path: set() for path in self.files.values()}
        for module, path in self.files.items():
            code = source(path)
            paths = [p for tree in USE.findall(code) for p in expand(tree)]
            paths += INLINE.findall(USE.sub("", code))
            for written in paths:
                target = self.resolve(module, written)
                if target is None or target == path:
                    continue
                other = self.module_of(target)
                if other[: len(module)] == module or module[: len(other)] == other:
                    continue  # a module file and its own children
                graph[path].add(target)
        return graph


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def shown(path, top):
    return str(path.relative_to(top)) if path.is_relative_to(top) else str(path)


def main():
    top = Path.cwd().resolve()
    roots = [Path(a).resolve() for a in sys.argv[1:]] or [top / "src"] + sorted(top.glob("crates/*/src"))
    bad = 0
    for root in roots:
        crate = Crate(root.resolve())
        graph = crate.edges()
        for component in cycles(graph):
            bad += 1
            print(f"cycle: {' '.join(shown(p, top) for p in component)}")
            for p in component:
                inside = sorted(shown(q, top) for q in graph[p] if q in component)
                print(f"  {shown(p, top)} -> {', '.join(inside)}")
        print(f"{shown(root, top)}: {len(crate.files)} files, "
              f"{sum(map(len, graph.values()))} edges, {len(cycles(graph))} cycle(s)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
