"""ServiceSplitter → Consul `service-splitter`: weighted traffic splits between services or subsets.

The weight rules are checked in float32, as Go does: `[62.2, 34.4, 3.4]` adds up to 100.000008 (and
is refused) while `[67.89, 28.35, 3.76]` adds up to exactly 100 (and is accepted).
"""

from __future__ import annotations

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, invalid
from generator.configentries.gofmt import F32, f32
from generator.configentries.kind import ConsulMeta, Kind, spec_of

SPLIT = F.obj(None, "", struct=True, fields=(
    F.number("weight", "Weight is a value between 0 and 100 reflecting what portion of traffic should be directed "
             "to this split. The smallest representable weight is 1/10000 or .01%.", always=True),
    F.string("service", "Service is the service to resolve instead of the default."),
    F.string("serviceSubset", "ServiceSubset is a named subset of the given service to resolve instead of one "
             "defined as that service's DefaultSubset. If empty the default subset is used."),
    F.string("namespace", "The namespace to resolve the service from instead of the current namespace. If empty the "
             "current namespace is assumed."),
    S.header_modifiers("requestHeaders", "Allow HTTP header manipulation to be configured."),
    S.header_modifiers("responseHeaders", "HTTPHeaderModifiers is a set of rules for HTTP header modification that "
                       "should be performed by proxies as the request passes through them. It can operate on either "
                       "request or response headers depending on the context in which it is used."),
))
SPLITS = F.array("splits", "Splits defines how much traffic to send to which set of service instances during a "
                 "traffic split. The sum of weights across all splits must add up to 100.", SPLIT)
SPEC = F.obj("spec", "ServiceSplitterSpec defines the desired state of ServiceSplitter", struct=True, fields=(SPLITS,))

_MIN, _MAX = f32(0.01), f32(100)


def _weight(split: dict) -> float:
    weight = split.get("weight")
    return f32(weight) if isinstance(weight, (int, float)) and not isinstance(weight, bool) else 0.0


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    raw = spec_of(resource).get("splits")
    splits = [S.as_dict(s) for s in S.as_list(raw)]
    errors, total = [], f32(0)
    for i, split in enumerate(splits):
        weight = _weight(split)
        if weight != 0 and (weight > _MAX or weight < _MIN):
            errors.append(invalid(f"spec.splits[{i}].weight", F32(weight),
                                  "weight must be a percentage between 0.01 and 100"))
        total = f32(total + weight)
    if total != 100:
        errors.append(invalid("spec.splits", F.dump(F.redoc(SPLITS, "", required=True), raw),
                              "the sum of weights across all splits must add up to 100 percent, but adds up to "
                              f"{total:f}"))
    if not meta.namespaces_enabled:
        for i, split in enumerate(splits):
            if split.get("namespace"):
                errors.append(invalid(f"spec.splits[{i}].namespace", split["namespace"],
                                      S.NAMESPACES_OFF + "split.namespace"))
    return errors


KIND = Kind(kind="ServiceSplitter", plural="servicesplitters", singular="servicesplitter",
            consul_kind="service-splitter", spec=SPEC, validate_spec=validate)
