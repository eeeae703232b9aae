"""The layers walk one way (DESIGN.md "Layout"): import-linter's contracts in pyproject.toml
hold, and a violation is caught (a module that imports upward makes the check fail)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed (make test installs it)"
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    p = lint_imports()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 kept, 0 broken" in p.stdout


def test_no_private_name_is_imported_across_modules():
    bad = []
    for f in [*ROOT.glob("engine/**/*.py"), *ROOT.glob("pipelines/*.py"),
              *ROOT.glob("models/**/*.py"), *ROOT.glob("benchmarks/*.py")]:
        tree = ast.parse(f.read_text(), str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {a.name}")
    assert not bad, bad


def test_core_needs_no_framework():
    """engine.core imports with gi, zmq, onnxruntime and torch hidden (a fresh interpreter
    where importing them fails)."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('gi', 'zmq', 'onnxruntime', 'torch', 'onnx'):\n"
            "            raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import ceustream.engine.core.schedule, ceustream.engine.core.modelmeta, "
            "ceustream.engine.core.arrival, ceustream.engine.core.clip, "
            "ceustream.engine.core.manifest, ceustream.engine.core.source, "
            "ceustream.engine.core.config\n"
            "m = ceustream.engine.core.modelmeta.read(ceustream.engine.core.modelmeta.shipped_model_path())\n"
            "print(m.meta.name)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "cnn3d"


@pytest.mark.parametrize("victim,line", [
    ("engine/core/roi.py", "import ceustream.engine.app.session  # upward: must be refused\n"),
    ("models/data.py", "import ceustream.pipelines.gst  # sideways: must be refused\n"),
])
def test_a_broken_layer_is_caught(tmp_path, victim, line):
    """The contract is not vacuous: a copy of the tree with one upward import breaks it."""
    copy = tmp_path / "tree"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", "build", ".git", "tests",
                                                                "*.onnx", "__pycache__",
                                                                "dist", "out"))
    f = copy / victim
    f.write_text(line + f.read_text())
    pkg = tmp_path / "pkg" / "ceustream"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for d in ("engine", "pipelines", "models", "benchmarks"):
        (pkg / d).symlink_to(copy / d)
    # the copy, not the installed package (an editable install's finder is dropped too)
    env_code = (f"import sys; sys.path.insert(0, {str(tmp_path / 'pkg')!r}); "
                "sys.meta_path[:] = [f for f in sys.meta_path "
                "if 'editable' not in type(f).__module__ and 'skbc' not in type(f).__module__]; "
                "import ceustream.engine; assert ceustream.engine.__file__.startswith("
                f"{str(tmp_path)!r}), ceustream.engine.__file__; "
                "from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())")
    p = subprocess.run([sys.executable, "-c", env_code, "--no-cache"], cwd=copy,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0, p.stdout
    assert "BROKEN" in p.stdout.upper()


def test_every_module_that_does_work_has_a_logger():
    """ARCHITECTURE.md "Logging": the modules of the layers that do I/O (app, wire, backends,
    pipelines), over 80 lines, each have their own ``logging.getLogger(__name__)``."""
    missing = []
    for folder in ("engine/app", "engine/wire", "engine/backends", "pipelines"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            text = f.read_text(encoding="utf-8")
            if len(text.splitlines()) > 80 and "logging.getLogger(__name__)" not in text:
                missing.append(str(f.relative_to(ROOT)))
    assert not missing, missing


#: what "does work" means for the rule below, beyond the four I/O layers: GStreamer
#: pipelines, processes, sockets, threads, or files written
WORK = (r"subprocess\.|Gst\.parse_launch|Gst\.ElementFactory\.make|socket\.socket|"
        r"zmq\.Context|threading\.Thread|\.write_text\(|\.write_bytes\(|torch\.save|onnx\.save")


def test_every_module_that_runs_or_writes_something_has_a_logger():
    """The same rule in every package (engine, pipelines, models), whatever a module's size:
    a module that runs a pipeline, a process, a socket or a thread, or writes a file, logs
    through its own logger (issue 22: the simulator's recorder, the exporter, training)."""
    import re

    missing = []
    for folder in ("engine", "pipelines", "models"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            text = f.read_text(encoding="utf-8")
            if re.search(WORK, text) and "logging.getLogger(" not in text:
                missing.append(str(f.relative_to(ROOT)))
    assert not missing, missing
