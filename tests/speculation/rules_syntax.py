"""A checker for the Chrome Speculation Rules syntax (the parts a document-rule set uses).

Follows the WICG "Speculation Rules" parsing algorithm: a rule set is an object whose
``prefetch``/``prerender`` entries are lists of rules; a rule may only carry the known keys; a
document rule has no ``urls``; ``where`` is exactly one predicate of ``and``/``or``/``not``/
``href_matches``/``selector_matches``; ``eagerness`` is one of four words; a ``tag`` is printable
ASCII. ``href_matches`` values must be URL patterns; the check accepts the subset we emit:
literal text with ``\\``-escaped specials and bare ``*`` wildcards.
"""

from __future__ import annotations

from typing import Any

RULE_KEYS = {
    "source",
    "urls",
    "where",
    "requires",
    "target_hint",
    "referrer_policy",
    "relative_to",
    "eagerness",
    "expects_no_vary_search",
    "tag",
}
EAGERNESS = {"immediate", "eager", "moderate", "conservative"}
PREDICATE_KEYS = {"and", "or", "not", "href_matches", "selector_matches"}
SPECIAL_UNESCAPED = set(":?+(){}")


def problems(rule_set: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(rule_set, dict):
        return ["the rule set is not an object"]
    for key in rule_set:
        if key not in ("prefetch", "prerender", "tag"):
            out.append(f"unknown top-level key {key!r}")
    for action in ("prefetch", "prerender"):
        rules = rule_set.get(action, [])
        if not isinstance(rules, list):
            out.append(f"{action} is not a list")
            continue
        for i, rule in enumerate(rules):
            out += [f"{action}[{i}]: {p}" for p in _rule(rule)]
    return out


def _rule(rule: Any) -> list[str]:
    if not isinstance(rule, dict):
        return ["not an object"]
    out = [f"unknown key {k!r}" for k in rule if k not in RULE_KEYS]
    source = rule.get("source", "document" if "where" in rule else None)
    if source != "document":
        out.append(f"source {source!r} is not 'document'")
    if "urls" in rule:
        out.append("a document rule has no 'urls'")
    if "where" in rule:
        out += _predicate(rule["where"])
    if "eagerness" in rule and rule["eagerness"] not in EAGERNESS:
        out.append(f"eagerness {rule['eagerness']!r}")
    if "tag" in rule:
        tag = rule["tag"]
        if not isinstance(tag, str) or not all(0x20 <= ord(c) <= 0x7E for c in tag):
            out.append(f"tag {tag!r} is not printable ASCII")
    return out


def _predicate(pred: Any) -> list[str]:
    if not isinstance(pred, dict):
        return ["a predicate is not an object"]
    keys = set(pred) - {"relative_to"}
    if len(keys) != 1 or not keys <= PREDICATE_KEYS:
        return [f"a predicate needs exactly one of {sorted(PREDICATE_KEYS)}, got {sorted(keys)}"]
    (key,) = keys
    value = pred[key]
    if key in ("and", "or"):
        if not isinstance(value, list):
            return [f"{key} is not a list"]
        return [p for sub in value for p in _predicate(sub)]
    if key == "not":
        return _predicate(value)
    if key == "href_matches":
        patterns = value if isinstance(value, list) else [value]
        return [p for pattern in patterns for p in _pattern(pattern)]
    return [] if isinstance(value, str | list) else ["selector_matches is not a string"]


def _pattern(pattern: Any) -> list[str]:
    if not isinstance(pattern, str):
        return [f"pattern {pattern!r} is not a string"]
    scheme, sep, rest = pattern.partition("://")
    if not sep or scheme not in ("http", "https"):
        return [f"pattern {pattern!r} is not an absolute http(s) pattern"]
    authority, slash, path = rest.partition("/")
    if not authority or not all(c.isalnum() or c in ".-:[]" for c in authority):
        return [f"pattern {pattern!r} has an unusual host part"]
    rest = slash + path  # the host's ":port" is the constructor's delimiter, not a group
    i = 0
    while i < len(rest):
        ch = rest[i]
        if ch == "\\":
            if i + 1 == len(rest):
                return [f"pattern {pattern!r} ends in a lone backslash"]
            i += 2
            continue
        if ch in SPECIAL_UNESCAPED:
            return [f"pattern {pattern!r} has an unescaped {ch!r}"]
        if ord(ch) < 0x21 or ord(ch) > 0x7E:
            return [f"pattern {pattern!r} has a non-ASCII or blank character"]
        i += 1
    return []


def targets(rules: list[dict[str, Any]]) -> list[str]:
    """The URL patterns ``rules`` (one action's list) speculate on, in order: a rule's
    ``href_matches`` (beside its exclusions, when it has ``and``) is a pattern or a list of
    them."""
    out: list[str] = []
    for rule in rules:
        where = rule["where"]
        matches = where["and"][0]["href_matches"] if "and" in where else where["href_matches"]
        out += [matches] if isinstance(matches, str) else matches
    return out
