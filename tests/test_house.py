"""The house rules that keep the package readable: stages as folders, small classes, method behaviour
in methods.py only, teacher rule behaviour in teachers.py only, one list of figure kinds and of methods."""

import ast
from pathlib import Path

import yaml

from mhd.learning import methods, teachers
from mhd.report import figures, kinds

SRC = Path(__file__).resolve().parents[1] / "src" / "mhd"


def _modules():
    return sorted(p for p in SRC.rglob("*.py"))


def test_the_stages_are_folders_and_import_downwards_only():
    assert {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {
        "data", "learning", "report", "bench"}
    # data < learning < report (bench sits beside report): no stage imports a later one
    later = {"data": ("learning", "report", "bench"), "learning": ("report", "bench"), "report": ("bench",)}
    for path in _modules():
        stage = path.relative_to(SRC).parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                top = node.module.split(".")[0] if node.level == 2 else None
                assert top not in later.get(stage, ()), f"{path.relative_to(SRC)} imports {node.module}"


def test_no_class_is_longer_than_130_lines():
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= 130, f"{path.relative_to(SRC)}: class {node.name} has {length} lines"


def test_no_branch_on_a_method_name_outside_methods_py():
    for path in _modules():
        if path.name == "methods.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                assert not set(names) & set(methods.METHODS), \
                    f"{path.relative_to(SRC)}:{node.lineno} compares with a method name; use a hook in methods.py"


def test_no_branch_on_a_teacher_rule_name_outside_teachers_py():
    for path in _modules():
        if path.name == "teachers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                sides += [e for c in sides if isinstance(c, (ast.Tuple, ast.List, ast.Set)) for e in c.elts]
                names = [c.value for c in sides if isinstance(c, ast.Constant)]
                assert not set(names) & set(teachers.RULES), \
                    f"{path.relative_to(SRC)}:{node.lineno} compares with a teacher rule's name; ask its Rule"


def test_one_list_of_figure_kinds_and_of_methods(repo):
    # each kind drawn by the function of its name in figures.py (not a module or name imported there)
    assert tuple(figures.DRAW) == kinds.KINDS
    assert all(callable(f) and f.__module__ == figures.__name__ for f in figures.DRAW.values())
    assert kinds.TRAINING_KINDS + kinds.DATA_KINDS == kinds.KINDS
    schema = yaml.safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert tuple(schema["$defs"]["run"]["properties"]["method"]["enum"]) == methods.METHODS
    assert all(methods.label(m, 0) for m in methods.METHODS)
    # every training kind says which keys it tells runs apart by; config/README.md names every kind
    assert set(kinds.DRAWN) == set(kinds.TRAINING_KINDS)
    readme = (repo / "config" / "README.md").read_text()
    assert all(f"`{k}`" in readme for k in kinds.KINDS), [k for k in kinds.KINDS if f"`{k}`" not in readme]


def test_every_module_says_its_job():
    for path in _modules():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc) > 20, f"{path.relative_to(SRC)} has no module docstring"
