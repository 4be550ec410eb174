"""Fuzzing the API from its OpenAPI document with schemathesis, against a running server.

Every operation of ``/api/schema/`` is called by each actor (anonymous, or a token) with
data that fits the document (positive), data that does not (negative), and data that fits
and names objects that exist (so the 200 paths are reached too, not only the 404s). Each
answer is checked for: no 5xx, a status code the document lists, the documented content
type, and a body that matches the documented schema. Failures are collected, not raised
one by one, so a run reports everything it found.

Generation is derandomised (the same examples every run) and Hypothesis keeps no database,
so ``make test`` is deterministic; ``make fuzz`` runs the same thing with many more examples.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Finding:
    operation: str
    actor: str
    mode: str
    status: int
    checks: list[str]
    message: str


@dataclass
class Summary:
    requests: int = 0
    by_status: collections.Counter = field(default_factory=collections.Counter)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.by_status.items() if status >= 500)

    def distinct(self) -> dict[tuple[str, str], list[Finding]]:
        """Findings grouped by (operation, failed checks), the shape a person fixes them in."""
        grouped: dict[tuple[str, str], list[Finding]] = collections.defaultdict(list)
        for finding in self.findings:
            grouped[(finding.operation, ", ".join(finding.checks))].append(finding)
        return dict(grouped)

    def report(self, *, detail: bool = False) -> str:
        lines = [
            f"schemathesis: {self.requests} requests in {self.seconds:.0f} s, "
            f"{self.server_errors} answered 5xx, {len(self.findings)} failed a check "
            f"({len(self.distinct())} distinct operation × check)",
            "statuses: " + ", ".join(f"{status}×{count}" for status, count in sorted(self.by_status.items())),
        ]
        for (operation, checks), findings in sorted(self.distinct().items()):
            first = findings[0]
            actors = ", ".join(sorted({f"{f.actor}/{f.mode}" for f in findings}))
            lines.append(f"  {operation}: {checks} ×{len(findings)} [{actors}], first answered {first.status}")
            if detail:
                lines.extend("      " + line for line in first.message.strip().splitlines()[:40])
        return "\n".join(lines)


def load(base_url: str):
    return schemathesis.openapi.from_url(f"{base_url}/api/schema/?format=json", timeout=30)


def run(*, base_url: str, actors: dict[str, dict[str, str]], examples: int,
        known: dict[str, object] | None = None, schema=None) -> Summary:
    """Fuzz every operation as every actor; ``known`` fixes path parameters to existing objects
    in a third pass (parameter name → value)."""
    schema = schema or load(base_url)
    summary = Summary()
    started = time.monotonic()
    session = requests.Session()
    settings = hypothesis.settings(
        max_examples=examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.generate], verbosity=hypothesis.Verbosity.quiet,
    )
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {parameter.name for parameter in operation.path_parameters}
        passes = [("positive", GenerationMode.POSITIVE, None), ("negative", GenerationMode.NEGATIVE, None)]
        fixed = {name: known[name] for name in names if known and name in known}
        if fixed and len(fixed) == len(names):
            passes.append(("existing", GenerationMode.POSITIVE, fixed))
        for mode_name, mode, path_parameters in passes:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            exercise = _exercise(strategy, settings, summary, operation, mode_name, actors,
                                 base_url=base_url, session=session)
            try:
                exercise()
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to negate: an operation without parameters or body
    summary.seconds = time.monotonic() - started
    return summary


def _exercise(strategy, settings, summary, operation, mode, actors, *, base_url, session):
    """A Hypothesis test sending each generated case once per actor (generating costs more
    than sending, so the actors share the cases)."""

    @hypothesis.given(case=strategy)
    @settings
    def exercise(case):
        # The actor's credentials replace whatever the generator put in Authorization.
        case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        for actor, headers in actors.items():
            response = case.call(base_url=base_url, session=session, headers=dict(headers), timeout=30)
            _record(summary, operation, actor, mode, case, response, headers=dict(headers))

    return exercise


def _record(summary: Summary, operation, actor: str, mode: str, case, response, *, headers) -> None:
    summary.requests += 1
    summary.by_status[response.status_code] += 1
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except FailureGroup as group:
        summary.findings.append(Finding(
            operation=operation.label, actor=actor, mode=mode, status=response.status_code,
            checks=sorted({type(f).__name__ for f in group.exceptions}), message=str(group)))
