"""docs/security.md is the project's security claim: it must name tests that exist."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# | number | behaviour | proof in Fitbit's dialect | proof in Google's dialect |
ROW = re.compile(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$")


def rows():
    with open(os.path.join(ROOT, "docs", "security.md")) as doc:
        return [ROW.match(line).groups() for line in doc if ROW.match(line)]


def defined_tests():
    names = set()
    tests = os.path.join(ROOT, "tests")
    for name in os.listdir(tests):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(tests, name)) as source:
                tree = ast.parse(source.read())
            names |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    return names


def test_every_row_names_tests_that_exist_for_each_dialect():
    defined = defined_tests()
    for number, _, *proofs in rows():
        for dialect, proof in zip(("Fitbit", "Google"), proofs, strict=True):
            named = re.findall(r"`(test_\w+)`", proof)
            # A dialect without the behaviour says so, and why.
            assert named or proof.startswith("n/a: "), f"item {number} names no {dialect} test"
            assert [name for name in named if name not in defined] == [], f"item {number}"


def test_items_are_numbered_one_by_one():
    assert [int(row[0]) for row in rows()] == list(range(1, len(rows()) + 1))


def test_every_item_the_code_cites_is_in_the_table():
    numbers = {int(row[0]) for row in rows()}
    cited = set()
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [
            name for name in subfolders if not name.startswith(".") and name != "tests"
        ]
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as source:
                    found = re.findall(r"security\.md item (\d+)", source.read())
                cited |= {int(n) for n in found}
    assert cited and cited <= numbers
