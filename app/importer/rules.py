"""Rules: which (party, status) a feature's properties stand for, or why it is skipped.

A rules file (JSON or TOML) is a list of rules, tried in order; the first that matches wins::

    [{"match": {"fill": ["#a52714", "#880e4f"]}, "party": "RU", "status": "controlled"},
     {"match": {"fill": "#bcaaa4"}, "party": null, "status": "contested"},
     {"match": {"fill": "#0f9d58"}, "skip": true, "reason": "liberated"}]

In TOML the same list is ``[[rules]]`` tables (leave ``party`` out for no party). A rule
matches when every property it names has one of the given values; strings are compared without
regard to case or surrounding spaces. Features that match no rule are skipped and counted.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.domain.errors import InvalidInput
from app.domain.model import Status


def normalise(value: Any) -> str | None:
    """How property values are compared: case-insensitive text; null stays null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().casefold()


@dataclass(frozen=True)
class Rule:
    match: tuple[tuple[str, frozenset[str | None]], ...]
    party: str | None = None
    status: Status = Status.CONTROLLED
    skip: bool = False
    reason: str | None = None

    def matches(self, properties: Mapping[str, Any]) -> bool:
        return all(normalise(properties.get(key)) in values for key, values in self.match)


@dataclass(frozen=True)
class Skip:
    """A feature left out of the import, and why (the key under which it is counted)."""

    reason: str


Outcome = tuple[str | None, Status] | Skip


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    name: str  # "profile deepstate" or the rules file, for messages
    label: str = "map"  # what one file is, in citations: "DeepStateMap snapshot"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every property some rule looks at, in first-seen order."""
        seen: dict[str, None] = {}
        for rule in self.rules:
            seen.update((key, None) for key, _ in rule.match)
        return tuple(seen)

    @property
    def parties(self) -> set[str]:
        return {r.party for r in self.rules if r.party is not None and not r.skip}

    def classify(self, properties: Mapping[str, Any]) -> Outcome:
        for rule in self.rules:
            if rule.matches(properties):
                if rule.skip:
                    return Skip(rule.reason or f"skipped by a rule ({_describe(rule)})")
                return (rule.party, rule.status)
        shown = ", ".join(f"{key}={properties.get(key)!r}" for key in self.keys)
        return Skip(f"no rule matches ({shown})")


def _describe(rule: Rule) -> str:
    return ", ".join(
        f"{key} in {sorted(v or 'null' for v in values)}" for key, values in rule.match
    )


def parse_rules(items: Any, name: str, label: str = "map") -> Rules:
    """Rules from the decoded content of a rules file; errors name the file and the rule."""
    if isinstance(items, dict) and "rules" in items:
        label = str(items.get("label", label))
        items = items["rules"]
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"{name}: a rules file is a non-empty list of rules (see --help).")
    return Rules(
        tuple(_rule(item, f"{name}: rule {i}") for i, item in enumerate(items)), name, label
    )


def _rule(item: Any, where: str) -> Rule:
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: a rule is an object with 'match' and 'party'/'status'.")
    unknown = set(item) - {"match", "party", "status", "skip", "reason"}
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {sorted(unknown)}.")
    match = item.get("match")
    if not isinstance(match, dict) or not match:
        raise InvalidInput(f"{where}: 'match' must be an object {{property: value or [values]}}.")
    pairs = tuple(
        (str(key), frozenset(normalise(v) for v in (value if isinstance(value, list) else [value])))
        for key, value in match.items()
    )
    skip = bool(item.get("skip", False))
    if skip:
        return Rule(pairs, skip=True, reason=item.get("reason"))
    try:
        status = Status(item.get("status", "controlled"))
    except ValueError:
        raise InvalidInput(
            f"{where}: status must be one of {[s.value for s in Status]}, "
            f"not {item.get('status')!r}."
        ) from None
    party = item.get("party")
    if party is not None and not isinstance(party, str):
        raise InvalidInput(f"{where}: party must be a party code or null.")
    return Rule(pairs, party.upper() if party else None, status)


def load_rules(path: Path) -> Rules:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot read the rules file {path}: {e.strerror}.") from None
    try:
        content: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise InvalidInput(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {e}") from None
    return parse_rules(content, str(path))


# --- profiles ----------------------------------------------------------------------------------

DEEPSTATE = parse_rules(
    [
        {"match": {"fill": ["#a52714", "#880e4f"]}, "party": "RU", "status": "controlled"},
        {"match": {"fill": ["#bcaaa4", "#bdbdbd"]}, "party": None, "status": "contested"},
        {
            "match": {"fill": "#0f9d58"},
            "skip": True,
            "reason": "liberated (#0f9d58): ground retaken, not the extent of anyone's control",
        },
        {"match": {"fill": "#01579b"}, "party": "UA", "status": "controlled"},
    ],
    "profile deepstate",
    "DeepStateMap snapshot",
)

PROFILES: dict[str, Rules] = {"deepstate": DEEPSTATE}
