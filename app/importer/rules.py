"""Rules: which (party, status) a feature's properties stand for, or why it is skipped.

A rules file (JSON or TOML) is a list of rules, tried in order; the first that matches wins::

    [{"match": {"fill": ["#a52714", "#880e4f"]}, "party": "RU", "status": "controlled"},
     {"match": {"fill": "#bcaaa4"}, "party": null, "status": "contested"},
     {"match": {"fill": "#0f9d58"}, "skip": true, "reason": "liberated"}]

In TOML the same list is ``[[rules]]`` tables (leave ``party`` out for no party). A rule
matches when every property it names has one of the given values; strings are compared without
regard to case or surrounding spaces. Features that match no rule are skipped and counted.

A rule may say where it applies: ``"within": {"country": "RU"}`` (a country code or name of the
regions, or a list of them). Its features' ground is then clipped to that country's regions
before it is stored: a map's colour that means "Ukrainian control inside Russia" says nothing
about the few km² its polygons overlap the border into Ukraine.
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
    within: Scope = None

    def matches(self, properties: Mapping[str, Any]) -> bool:
        return all(normalise(properties.get(key)) in values for key, values in self.match)


@dataclass(frozen=True)
class Skip:
    """A feature left out of the import, and why (the key under which it is counted)."""

    reason: str


Outcome = tuple[str | None, Status] | Skip
Scope = frozenset[str] | None  # the countries (normalised code or name) a rule applies in


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

    @property
    def countries(self) -> set[str]:
        """Every country some rule is scoped to (normalised)."""
        return {c for r in self.rules if r.within for c in r.within}

    def rule_for(self, properties: Mapping[str, Any]) -> Rule | Skip:
        """The first rule that takes the feature, or why it is skipped."""
        for rule in self.rules:
            if rule.matches(properties):
                if rule.skip:
                    return Skip(rule.reason or f"skipped by a rule ({_describe(rule)})")
                return rule
        shown = ", ".join(f"{key}={properties.get(key)!r}" for key in self.keys)
        return Skip(f"no rule matches ({shown})")

    def classify(self, properties: Mapping[str, Any]) -> Outcome:
        rule = self.rule_for(properties)
        return rule if isinstance(rule, Skip) else (rule.party, rule.status)


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
    unknown = set(item) - {"match", "party", "status", "skip", "reason", "within"}
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
    return Rule(pairs, party.upper() if party else None, status, within=_within(item, where))


def _within(item: dict[str, Any], where: str) -> Scope:
    within = item.get("within")
    if within is None:
        return None
    countries = within.get("country") if isinstance(within, dict) else None
    if not isinstance(within, dict) or set(within) != {"country"} or not countries:
        raise InvalidInput(
            f"{where}: 'within' must be {{\"country\": CODE or [CODES]}}, e.g. "
            '{"country": "RU"}; it clips the rule\'s ground to that country\'s regions.'
        )
    values = countries if isinstance(countries, list) else [countries]
    scope = frozenset(normalise(v) for v in values if isinstance(v, str) and v.strip())
    if len(scope) != len(values):
        raise InvalidInput(f"{where}: 'within' countries must be non-empty strings.")
    return frozenset(c for c in scope if c is not None)


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

# DeepStateMap's fills (its legend, and the trilingual ``name`` its features carry):
#   #a52714  occupied (since 24 Feb 2022)            RU controlled, within Ukraine only
#   #880e4f  occupied before 2022 (ORDLO, Crimea)    RU controlled, within Ukraine only
#   #bcaaa4, #bdbdbd  status unknown (grey zone)     contested, no party, anywhere
#   #0f9d58  liberated since 2022                    skipped: ground retaken, not anyone's extent
#   #01579b  Ukrainian forces inside Russia (Kursk)  UA controlled, within Russia only
#   #ff5252, #0288d1  not established: see below     skipped, each with its own reason
# The scopes matter at the border: DeepState draws occupied ground and the Kursk salient with a
# detailed border, and the service's regions with a generalised one, so each overlaps the other
# country by a few km² (8 km² of "UA-held" ground landed in Sumy before the scope).
# #ff5252 (light red, ~12 polygons a map) and #0288d1 (light blue, ~2 a map): we have not been
# able to confirm what they stand for against a legend DeepState publishes. Their shape and number
# suggest the direction-of-attack arrows and highlights drawn as polygons (red Russian, blue
# Ukrainian): symbols, not ground. Unsure, so both are skipped, each under a reason that says so
# in every import summary (rather than "no rule matches"). The sync's cross-check against
# DeepState's own /areas figures (per fill) shows whether DeepState counts them as ground; if it
# does, give them a rule here.
DEEPSTATE = parse_rules(
    [
        {
            "match": {"fill": ["#a52714", "#880e4f"]},
            "party": "RU",
            "status": "controlled",
            "within": {"country": "UA"},
        },
        {"match": {"fill": ["#bcaaa4", "#bdbdbd"]}, "party": None, "status": "contested"},
        {
            "match": {"fill": "#0f9d58"},
            "skip": True,
            "reason": "liberated (#0f9d58): ground retaken, not the extent of anyone's control",
        },
        {
            "match": {"fill": "#01579b"},
            "party": "UA",
            "status": "controlled",
            "within": {"country": "RU"},
        },
        {
            "match": {"fill": "#ff5252"},
            "skip": True,
            "reason": "#ff5252: meaning not established (likely Russian attack arrows), "
            "not counted as ground",
        },
        {
            "match": {"fill": "#0288d1"},
            "skip": True,
            "reason": "#0288d1: meaning not established (likely Ukrainian attack arrows), "
            "not counted as ground",
        },
    ],
    "profile deepstate",
    "DeepStateMap snapshot",
)

# ISW/CTP publish each kind of ground as a layer of its own (an ArcGIS FeatureServer layer), not
# as a colour: ``frontline sync arcgis`` gives each feature the layer's name in ``_layer``, and
# these rules read it. The names are those we understand ISW/CTP's "Russia-Ukraine war" layers to
# carry, not checked against the live service here; ISW renames and splits layers now and then,
# so check the name a layer gives (``<layer URL>?f=json``, "name") and use --rules with a copy of
# these for layers named otherwise (an unknown name is skipped and counted, never guessed).
#   assessed Russian control (also since before 24 Feb 2022)  RU controlled, within Ukraine
#   assessed Russian advances (forces present, not control)   RU contested, within Ukraine
#   assessed Ukrainian control or advances inside Russia      UA controlled / contested, in Russia
#   claimed control or counteroffensives: a party's claim, which a run of assessed layers does
#   not mix with: skipped (import those layers with --basis claimed and a rules file of their
#   own); reported partisan warfare: not territorial control, skipped.


def _layers(layers: list[str], party: str, status: str, country: str) -> dict[str, Any]:
    """A rule for ISW layers by name, scoped to one country."""
    return {
        "match": {"_layer": layers},
        "party": party,
        "status": status,
        "within": {"country": country},
    }


ISW = parse_rules(
    [
        _layers(
            [
                "Assessed Russian-controlled Ukrainian Territory",
                "Russian-controlled Ukrainian Territory before February 24, 2022",
                "Assessed Russian-controlled Ukrainian Territory before February 24, 2022",
            ],
            "RU",
            "controlled",
            "UA",
        ),
        _layers(["Assessed Russian Advances in Ukraine"], "RU", "contested", "UA"),
        _layers(
            [
                "Assessed Ukrainian-controlled Territory in Russia",
                "Assessed Ukrainian Control in Kursk Oblast",
            ],
            "UA",
            "controlled",
            "RU",
        ),
        _layers(["Assessed Ukrainian Advances in Russia"], "UA", "contested", "RU"),
        {
            "match": {
                "_layer": [
                    "Claimed Russian Territory in Ukraine",
                    "Claimed Russian Control over Ukrainian Territory",
                    "Claimed Ukrainian Counteroffensives",
                ]
            },
            "skip": True,
            "reason": "a claimed-territory layer: a party's claim, not ISW's assessment "
            "(import it with --basis claimed and rules of its own)",
        },
        {
            "match": {"_layer": ["Reported Ukrainian Partisan Warfare"]},
            "skip": True,
            "reason": "reported partisan warfare: not territorial control",
        },
    ],
    "profile isw",
    "ISW/CTP layer snapshot",
)

PROFILES: dict[str, Rules] = {"deepstate": DEEPSTATE, "isw": ISW}
