"""The package's layering (CONTRIBUTING.md): no import cycles, the library never imports the CLI, no
module over ~400 lines without a stated reason, and the import paths of earlier versions still work."""
import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

import vocoder_ext

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "vocoder_ext"
# Folders installed as (sub)packages: kernels/ is installed as vocoder_ext.kernels (setup.py's package_dir).
SOURCES = {PACKAGE: ROOT / "vocoder_ext", f"{PACKAGE}.kernels": ROOT / "kernels"}
MAX_LINES = 400
LONG_MODULE_MARK = "over 400 lines because"  # what a longer module's docstring must say, with the reason


def modules():
    """{module name: path} of every .py file in the package."""
    found = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([prefix, *parts])] = path
    return found


def is_package(name, paths):
    return paths[name].name == "__init__.py"


def imported_modules(name, paths):
    """The package's modules that `name` imports anywhere in its source (function-level imports too):
    the named module, or for `from M import x` the submodule M.x where x is one."""
    tree = ast.parse(paths[name].read_text(), str(paths[name]))
    package = name if is_package(name, paths) else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in paths else source)
    return {t for t in targets if t in paths}


def import_graph():
    """Edges module -> modules whose code runs when it imports them: each target, and the __init__ of
    every package on the way to it that is not already one of the importer's own (already running)
    packages. The top package's __init__ only counts where it is named, e.g. `from .. import __version__`."""
    paths = modules()
    graph = {}
    for name in paths:
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        edges = set()
        for target in imported_modules(name, paths):
            edges.add(target)
            parts = target.split(".")
            for i in range(2, len(parts)):
                ancestor = ".".join(parts[:i])
                if ancestor in paths and ancestor not in own:
                    edges.add(ancestor)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_the_import_graph_is_read():
    graph = import_graph()
    assert "vocoder_ext.ops.registry" in graph["vocoder_ext.ops.lrelu_conv1d"]
    assert {"vocoder_ext.runtime", "vocoder_ext.runtime.autotune"} <= graph["vocoder_ext.ops.registry"]
    assert "vocoder_ext.cli.common" in graph["vocoder_ext.cli.demo"]
    # a lazy (function-level) import counts, and so does the __init__ of the package it lives in
    assert "vocoder_ext.kernels.lrelu_conv1d" in graph["vocoder_ext.ops.lrelu_conv1d"]
    assert "vocoder_ext.kernels" in graph["vocoder_ext.ops.lrelu_conv1d"]


def test_find_cycles_finds_one():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (each a set of modules that import each other):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_library_never_imports_the_cli():
    cli = f"{PACKAGE}.cli"
    tools = (cli, f"{PACKAGE}.__main__")  # `python -m vocoder_ext` is the CLI's entry point
    offenders = {name: sorted(t for t in targets if t == cli or t.startswith(cli + "."))
                 for name, targets in import_graph().items()
                 if not (name in tools or name.startswith(cli + "."))}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"library modules importing the CLI: {offenders}"


def test_runtime_imports_no_layer_above_it():
    above = ("vocoder_ext.ops", "vocoder_ext.models", "vocoder_ext.cli")
    for name, targets in import_graph().items():
        if name.startswith("vocoder_ext.runtime"):
            assert not [t for t in targets if t.startswith(above)], name
    assert "vocoder_ext.runtime.autotune" not in import_graph()["vocoder_ext.runtime.backend"]


def test_no_long_module_without_a_stated_reason():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_LINES and LONG_MODULE_MARK not in (ast.get_docstring(ast.parse(text)) or ""):
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, f"modules over {MAX_LINES} lines whose docstring does not say why: {too_long}"


OLD_PATHS = {"vocoder_ext.hifigan": "vocoder_ext.models.hifigan",
             "vocoder_ext.discriminators": "vocoder_ext.models.discriminators",
             "vocoder_ext.config": "vocoder_ext.models.config",
             "vocoder_ext.layers": "vocoder_ext.models.layers",
             "vocoder_ext.losses": "vocoder_ext.losses",
             "vocoder_ext.audio": "vocoder_ext.audio",
             "vocoder_ext.checkpoint": "vocoder_ext.checkpoint"}


@pytest.mark.parametrize("old,new", OLD_PATHS.items())
def test_old_import_paths_are_the_same_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_old_import_paths_work_in_a_fresh_interpreter():
    script = ("from vocoder_ext.hifigan import HiFiGAN, ResBlock1\n"
              "from vocoder_ext.discriminators import MultiPeriodDiscriminator\n"
              "from vocoder_ext.config import resolve_config\n"
              "import vocoder_ext.losses, vocoder_ext.audio, vocoder_ext.checkpoint\n"
              "import vocoder_ext\n"
              "assert HiFiGAN is vocoder_ext.HiFiGAN and vocoder_ext.ops.lrelu_conv1d\n"
              "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_public_surface():
    for name in vocoder_ext.__all__:
        assert hasattr(vocoder_ext, name), name
    report = vocoder_ext.backends()
    assert {"lrelu_conv1d", "lrelu_conv_transpose1d", "resblock"} <= set(report)
