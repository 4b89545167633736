"""A runner for helm-unittest suites (`chart/tests/*_test.yaml`) on the real Helm engine.

The helm-unittest plugin cannot be installed here, so this module reads the same suite files
(the format users run with `helm unittest chart/`) and executes them with `helmrender.render`:
Helm 4's engine in process, or a real Helm binary. Supported: suite and test `values`, `set`,
`release`, `capabilities`, `templates`/`template`, `documentIndex`, `documentSelector`, and
the assertions in ASSERTIONS (each also with `not: true`). Anything else in a suite (an unknown
assertion or option) is a SuiteError, so a typo can never pass silently.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from helmrender import CHART, RenderError, Rendered, render, template_path

SUITES = CHART / "tests"
_MISSING = object()


class SuiteError(Exception):
    """The suite itself is wrong (unknown assertion, bad path syntax, ...): a test error, not a failure."""


@dataclass
class Case:
    suite_file: Path
    suite: dict
    test: dict

    @property
    def id(self) -> str:
        return f"{self.suite_file.name}::{self.test.get('it', '?')}"


_SUITE_KEYS = {"suite", "templates", "values", "set", "release", "capabilities", "chart", "tests"}
_TEST_KEYS = {"it", "template", "templates", "values", "set", "release", "capabilities", "documentIndex",
              "documentSelector", "asserts"}
_ASSERT_OPTIONS = {"not", "template", "documentIndex", "documentSelector"}


def load_cases(suites_dir: Path = SUITES) -> list[Case]:
    cases = []
    for path in sorted(suites_dir.glob("*_test.yaml")):
        suite = yaml.safe_load(path.read_text()) or {}
        unknown = set(suite) - _SUITE_KEYS
        if unknown:
            raise SuiteError(f"{path.name}: unsupported suite keys {sorted(unknown)}")
        for test in suite.get("tests") or []:
            cases.append(Case(path, suite, test))
    return cases


# ---- paths ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<key>[^.\[\]]+)
  | \[(?P<index>-?\d+)\]
  | \[(?P<quote>["'])(?P<qkey>.*?)(?P=quote)\]
  | \[\?\(@\.(?P<fkey>[\w.-]+)\s*==\s*(?P<fquote>["'])(?P<fvalue>.*?)(?P=fquote)\)\]
  | (?P<dot>\.)
""", re.X)


def parse_path(path: str) -> list[tuple[str, Any]]:
    """helm-unittest's path syntax: a.b[0]["x.y"][?(@.name == "c")]."""
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise SuiteError(f"cannot parse path {path!r} at {path[pos:]!r}")
        pos = m.end()
        if m.group("key") is not None:
            steps.append(("key", m.group("key")))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        elif m.group("qkey") is not None:
            steps.append(("key", m.group("qkey")))
        elif m.group("fkey") is not None:
            steps.append(("filter", (m.group("fkey"), m.group("fvalue"))))
    return steps


def lookup(doc: Any, path: str) -> Any:
    """The value at `path`, or _MISSING."""
    node = doc
    for kind, arg in parse_path(path):
        if kind == "key":
            if not isinstance(node, dict) or arg not in node:
                return _MISSING
            node = node[arg]
        elif kind == "index":
            if not isinstance(node, list) or not -len(node) <= arg < len(node):
                return _MISSING
            node = node[arg]
        else:
            if not isinstance(node, list):
                return _MISSING
            key, value = arg
            found = [item for item in node if str(lookup(item, key)) == value]
            if len(found) > 1:
                raise SuiteError(f"path {path!r}: the filter matches {len(found)} items, not one")
            if not found:
                return _MISSING
            node = found[0]
    return node


# ---- assertions ----------------------------------------------------------------------------

def _get(doc: dict, params: dict, decode: bool = False) -> Any:
    value = lookup(doc, _param(params, "path"))
    if value is not _MISSING and decode and params.get("decodeBase64"):
        value = base64.b64decode(value).decode()
    return value


def _param(params: dict, name: str) -> Any:
    if not isinstance(params, dict) or name not in params:
        raise SuiteError(f"assertion needs `{name}`")
    return params[name]


def _show(value: Any) -> str:
    return "<missing>" if value is _MISSING else json.dumps(value, default=str)


def _is_subset(content: Any, actual: Any) -> bool:
    if isinstance(content, dict):
        return isinstance(actual, dict) and all(k in actual and _is_subset(v, actual[k]) for k, v in content.items())
    return content == actual


def a_equal(doc, p):
    actual = _get(doc, p, decode=True)
    return actual is not _MISSING and actual == p.get("value"), f"{p['path']}: expected {_show(p.get('value'))}, got {_show(actual)}"


def a_exists(doc, p):
    actual = _get(doc, p)
    return actual is not _MISSING, f"{p['path']}: expected to exist, got {_show(actual)}"


def a_is_null(doc, p):
    actual = _get(doc, p)
    return actual is _MISSING or actual is None, f"{p['path']}: expected null, got {_show(actual)}"


def a_is_empty(doc, p):
    actual = _get(doc, p)
    return actual is _MISSING or actual in (None, "", 0, [], {}), f"{p['path']}: expected null or empty, got {_show(actual)}"


def a_is_kind(doc, p):
    return doc.get("kind") == _param(p, "of"), f"kind: expected {p['of']}, got {doc.get('kind')}"


def a_is_api_version(doc, p):
    return doc.get("apiVersion") == _param(p, "of"), f"apiVersion: expected {p['of']}, got {doc.get('apiVersion')}"


def a_contains(doc, p):
    actual = _get(doc, p)
    content = _param(p, "content")
    if not isinstance(actual, list):
        return False, f"{p['path']}: expected a list, got {_show(actual)}"
    match = (lambda item: _is_subset(content, item)) if p.get("any") else (lambda item: item == content)
    n = sum(1 for item in actual if match(item))
    ok = n == p["count"] if "count" in p else n > 0
    return ok, f"{p['path']}: expected to contain {_show(content)}{' ' + str(p['count']) + ' time(s)' if 'count' in p else ''}, found {n} in {_show(actual)}"


def a_match_regex(doc, p):
    actual = _get(doc, p, decode=True)
    if not isinstance(actual, str):
        return False, f"{p['path']}: expected a string, got {_show(actual)}"
    return re.search(_param(p, "pattern"), actual) is not None, f"{p['path']}: {actual!r} does not match /{p['pattern']}/"


def a_is_subset(doc, p):
    actual = _get(doc, p)
    content = _param(p, "content")
    if not isinstance(actual, dict):
        return False, f"{p['path']}: expected a map, got {_show(actual)}"
    return _is_subset(content, actual), f"{p['path']}: {_show(actual)} does not contain {_show(content)}"


def a_length_equal(doc, p):
    actual = _get(doc, p)
    n = len(actual) if isinstance(actual, (list, dict)) else None
    return n == _param(p, "count"), f"{p['path']}: expected {p['count']} item(s), got {_show(actual)}"


# name → (check, negated): `notX` is `X` with `not: true`.
_DOC_ASSERTIONS: dict[str, tuple[Callable, bool]] = {
    "equal": (a_equal, False), "notEqual": (a_equal, True),
    "exists": (a_exists, False), "notExists": (a_exists, True),
    "isNotNull": (a_is_null, True), "isNull": (a_is_null, False),
    "isNullOrEmpty": (a_is_empty, False), "isEmpty": (a_is_empty, False),
    "isNotNullOrEmpty": (a_is_empty, True), "isNotEmpty": (a_is_empty, True),
    "isKind": (a_is_kind, False), "isAPIVersion": (a_is_api_version, False),
    "contains": (a_contains, False), "notContains": (a_contains, True),
    "matchRegex": (a_match_regex, False), "notMatchRegex": (a_match_regex, True),
    "isSubset": (a_is_subset, False), "isNotSubset": (a_is_subset, True),
    "lengthEqual": (a_length_equal, False), "notLengthEqual": (a_length_equal, True),
}
_RAW_ASSERTIONS = {"equalRaw", "notEqualRaw", "matchRegexRaw", "notMatchRegexRaw"}
ASSERTIONS = sorted({*_DOC_ASSERTIONS, *_RAW_ASSERTIONS, "hasDocuments", "failedTemplate", "notFailedTemplate"})


# ---- running a test ------------------------------------------------------------------------

def _set_to_values(sets: dict | None) -> dict:
    """helm-unittest `set:` (dotted keys, typed values) as a nested values map."""
    out: dict = {}
    for key, value in (sets or {}).items():
        if "[" in key:
            raise SuiteError(f"set key {key!r}: list indexes are not supported here; set the whole list")
        parts = [part.replace("\0", ".") for part in key.replace("\\.", "\0").split(".")]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _values(case: Case) -> list:
    here = case.suite_file.parent
    sources: list = [here / f for f in case.suite.get("values") or []]
    sources += [here / f for f in case.test.get("values") or []]
    sources += [_set_to_values(case.suite.get("set")), _set_to_values(case.test.get("set"))]
    return sources


def _render(case: Case, helm: str | None) -> Rendered:
    release = {**(case.suite.get("release") or {}), **(case.test.get("release") or {})}
    caps = {**(case.suite.get("capabilities") or {}), **(case.test.get("capabilities") or {})}
    kwargs: dict[str, Any] = {
        "release": release.get("name") or "release-name",
        "namespace": release.get("namespace") or "namespace",
        "is_upgrade": bool(release.get("upgrade")),
        "api_versions": caps.get("apiVersions") or (),
    }
    if "majorVersion" in caps or "minorVersion" in caps:
        kwargs["kube_version"] = f"{caps.get('majorVersion', 1)}.{caps.get('minorVersion', 29)}.0"
    return render(_values(case), helm=helm, notes=True, **kwargs)


def _error_message(error: str) -> str:
    """The human-readable part of a template error, as helm-unittest's errorMessage compares it."""
    m = re.search(r"execution error at \([^)]*\): (.*)", error)
    return m.group(1).strip() if m else error.strip()


def _templates(case: Case, assertion: dict) -> list[str]:
    names = assertion.get("template") or case.test.get("template")
    names = [names] if isinstance(names, str) else names or case.test.get("templates") or case.suite.get("templates")
    if not names:
        raise SuiteError("no template named in the assertion, the test or the suite")
    return [template_path(n) for n in names]


def _select(case: Case, assertion: dict, rendered: Rendered, templates: list[str]) -> list[dict]:
    docs = [d for t in templates for d in rendered.docs(t)]
    index = assertion.get("documentIndex", case.test.get("documentIndex"))
    selector = assertion.get("documentSelector", case.test.get("documentSelector"))
    if index is not None and index >= 0:
        if index >= len(docs):
            raise AssertionError(f"documentIndex {index}: only {len(docs)} document(s) rendered by {templates}")
        return [docs[index]]
    if selector:
        want = _param(selector, "value")
        docs = [d for d in docs if lookup(d, _param(selector, "path")) == want]
        if not docs:
            raise AssertionError(f"documentSelector {selector}: no document of {templates} matches")
        if len(docs) > 1 and not selector.get("matchMany"):
            raise AssertionError(f"documentSelector {selector}: {len(docs)} documents match (set matchMany)")
    return docs


def run_case(case: Case, helm: str | None = None) -> None:
    """Run one test; AssertionError lists every failed assertion, SuiteError means a bad suite."""
    unknown = set(case.test) - _TEST_KEYS
    if unknown:
        raise SuiteError(f"unsupported test keys {sorted(unknown)}")
    asserts = case.test.get("asserts")
    if not asserts:
        raise SuiteError("a test needs `asserts`")
    try:
        rendered, error = _render(case, helm), None
    except RenderError as exc:
        rendered, error = None, str(exc)
    failures = []
    for i, assertion in enumerate(asserts):
        names = set(assertion) - _ASSERT_OPTIONS
        if len(names) != 1:
            raise SuiteError(f"asserts[{i}]: expected one assertion type, got {sorted(names)}")
        (name,) = names
        if name not in ASSERTIONS:
            raise SuiteError(f"asserts[{i}]: unknown assertion {name!r} (supported: {', '.join(ASSERTIONS)})")
        params = assertion[name] or {}
        negate = bool(assertion.get("not"))
        for problem in _check(case, name, params, negate, assertion, rendered, error):
            failures.append(f"asserts[{i}] {name}{' (not)' if negate else ''}: {problem}")
    if failures:
        raise AssertionError("\n".join(failures))


def _check(case, name, params, negate, assertion, rendered, error) -> list[str]:
    if name in ("failedTemplate", "notFailedTemplate"):
        if name == "notFailedTemplate":
            negate = not negate
        if error is None:
            return [] if negate else ["expected the chart to fail to render, it rendered"]
        if negate:
            return [f"expected no error, got: {error}"]
        if "errorMessage" in params and _error_message(error) != params["errorMessage"]:
            return [f"expected error {params['errorMessage']!r}, got {_error_message(error)!r}"]
        if "errorPattern" in params and not re.search(params["errorPattern"], error):
            return [f"error does not match /{params['errorPattern']}/: {error}"]
        return []
    if error is not None:
        return [f"the chart failed to render: {error}"]
    templates = _templates(case, assertion)
    if name == "hasDocuments":
        n = sum(len(rendered.docs(t)) for t in templates)
        ok = (n == _param(params, "count")) != negate
        return [] if ok else [f"expected {'not ' if negate else ''}{params['count']} document(s) from {templates}, got {n}"]
    if name in _RAW_ASSERTIONS:
        base = name.removeprefix("not")
        base = base[0].lower() + base[1:]
        negate = negate != name.startswith("not")
        out = []
        for t in templates:
            text = rendered.files.get(t, "")
            if base == "equalRaw":
                ok, msg = text == _param(params, "value"), f"{t}: expected {params['value']!r}, got {text!r}"
            else:
                ok, msg = re.search(_param(params, "pattern"), text) is not None, f"{t}: {text!r} does not match /{params['pattern']}/"
            if ok == negate:
                out.append(("NOT: " if negate else "") + msg)
        return out
    check, inverted = _DOC_ASSERTIONS[name]
    negate = negate != inverted
    try:
        docs = _select(case, assertion, rendered, templates)
    except AssertionError as exc:
        return [str(exc)]
    if not docs:
        return [f"no document rendered by {templates}"]
    out = []
    for doc in docs:
        ok, msg = check(doc, params)
        if ok == negate:
            where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            out.append(f"{where}: {'NOT: ' if negate else ''}{msg}")
    return out
