"""JUnit XML test reports, as `pytest --junitxml` writes them: the outcome of one named case.

A `test` citation names a test (a pytest node id such as `tests/test_x.py::TestA::test_b[1]`)
and the report saved in the lab (its `snapshot`). What the test proved is read from that
report, never from what the finding declares: a case with a <failure>, <error> or <skipped>
child did not pass; one without any passed.

The report is untrusted input, so it is read with expat directly, in 1 MiB chunks (memory
stays bounded whatever its size), and a document that declares a DTD or an entity is refused
before anything is expanded (the "billion laughs" and external-entity attacks need one): the
same rule defusedxml applies, without a dependency for one check.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

CaseOutcome = Literal["passed", "failed", "error", "skipped"]
CHUNK = 1 << 20
MAX_CASE_TEXT = 1 << 20  # characters of one case's output and properties kept
# A case's worst child decides; a case reported twice (a teardown error after a pass) too.
WORST: dict[CaseOutcome, int] = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
CHILD: dict[str, CaseOutcome] = {"failure": "failed", "error": "error", "skipped": "skipped"}


class NotAReport(Exception):
    """The file cannot be read as a JUnit report (not XML, no test suite, a DTD)."""


def case_name(test_id: str) -> tuple[str, str]:
    """The (classname, name) pytest writes for a node id, as its junitxml plugin mangles it.

    'tests/test_x.py::TestA::test_b[1]' -> ('tests.test_x.TestA', 'test_b[1]'). A dotted id
    ('tests.test_x.test_b') is read as classname.name.
    """
    path, bracket, params = test_id.partition("[")
    names = path.split("::")
    if len(names) == 1:
        classname, _, name = path.rpartition(".")
        return classname, name + bracket + params
    names[0] = re.sub(r"\.py$", "", names[0].replace("\\", "/")).replace("/", ".")
    return ".".join(names[:-1]), names[-1] + bracket + params


@dataclass
class _Reading:
    wanted: tuple[str, str]
    suites: int = 0
    cases: int = 0
    open_case: CaseOutcome | None = None  # the matching case being read, if inside one
    found: list[CaseOutcome] = field(default_factory=list)
    # what the matching case recorded: its system-out/err text and property values, which is
    # all a report can say about a number or a text (bounded: a claim needs a few lines of it)
    text: list[str] = field(default_factory=list)
    kept: int = 0

    def keep(self, data: str) -> None:
        if self.open_case is not None and self.kept < MAX_CASE_TEXT:
            self.text.append(data[: MAX_CASE_TEXT - self.kept])
            self.kept += len(self.text[-1])

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag in ("testsuite", "testsuites"):
            self.suites += 1
        elif tag == "testcase":
            self.cases += 1
            named = (attrs.get("classname", ""), attrs.get("name", ""))
            self.open_case = "passed" if named == self.wanted else None
        elif self.open_case is not None and tag in CHILD:
            child = CHILD[tag]
            if WORST[child] > WORST[self.open_case]:
                self.open_case = child
        elif self.open_case is not None and tag == "property":
            self.keep(f"\n{attrs.get('name', '')}: {attrs.get('value', '')}\n")
        elif tag in ("system-out", "system-err"):
            self.keep("\n")

    def end(self, tag: str) -> None:
        if tag == "testcase" and self.open_case is not None:
            self.found.append(self.open_case)
            self.open_case = None


def _refuse(*_args: object) -> int:
    raise NotAReport("it declares a DTD or an entity, which a test report never needs: refused")


class Case(NamedTuple):
    outcome: CaseOutcome
    text: str  # its system-out/system-err and "name: value" of its properties


def read_case(path: Path, test_id: str) -> Case | None:
    """The outcome the report at path gives the test and what the case recorded, or None when
    it holds no such case.

    Raises NotAReport when the file is not a JUnit report (says why).
    """
    reading = _Reading(case_name(test_id))
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = reading.start
    parser.EndElementHandler = reading.end
    parser.CharacterDataHandler = reading.keep
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse  # never reached: no DTD, no external entity
    try:
        with path.open("rb") as fh:
            while data := fh.read(CHUNK):
                parser.Parse(data, False)
            parser.Parse(b"", True)
    except xml.parsers.expat.ExpatError as exc:
        raise NotAReport(f"not well-formed XML: {exc}") from None
    if not reading.suites:
        raise NotAReport("no <testsuite> element: not a JUnit report")
    if not reading.found:
        return None
    return Case(max(reading.found, key=WORST.__getitem__), "".join(reading.text))
