"""Discord's limits on components and autocomplete choices, checked as Discord checks them.

Discord refuses a message, an edit or an interaction response that breaks one of these with
``400 Invalid Form Body`` (code 50035) and names the field; nothing of it is shown. The fake
Discord applies them to every body the bot sends, so a bot that would be refused in production
fails its tests here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["autocomplete_problem", "body_problem"]

JSON = dict[str, Any]


MAX_ROWS = 5
BUTTONS_PER_ROW = 5
CUSTOM_ID = 100
BUTTON_LABEL = 80
SELECT_OPTIONS = 25
OPTION_TEXT = 100
PLACEHOLDER = 150

MAX_CHOICES = 25
CHOICE_TEXT = 100

_ACTION_ROW, _BUTTON, _LINK_STYLE = 1, 2, 5
_SELECTS = frozenset({3, 5, 6, 7, 8})


def body_problem(body: JSON) -> str | None:
    """What in a message body's components Discord would refuse (``None``: nothing); the
    fake checks embeds itself (``fake_discord.EMBED_LIMITS``)."""
    return _components_problem(body.get("components") or [])


def autocomplete_problem(choices: object) -> str | None:
    """What in an autocomplete answer (response type 8) Discord would refuse."""
    if not isinstance(choices, list):
        return "data.choices: must be a list"
    if len(choices) > MAX_CHOICES:
        return f"data.choices: must be {MAX_CHOICES} or fewer in length"
    for i, choice in enumerate(choices):
        name = choice.get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= CHOICE_TEXT:
            return f"data.choices.{i}.name: must be 1-{CHOICE_TEXT} characters"
        value = choice.get("value")
        if isinstance(value, str) and len(value) > CHOICE_TEXT:
            return f"data.choices.{i}.value: must be {CHOICE_TEXT} or fewer in length"
    return None


def _components_problem(rows: list[JSON]) -> str | None:
    if len(rows) > MAX_ROWS:
        return f"components: must be {MAX_ROWS} or fewer in length"
    seen: set[str] = set()
    for i, row in enumerate(rows):
        if row.get("type") != _ACTION_ROW:
            return f"components.{i}.type: a top-level component must be an action row"
        children = row.get("components") or []
        if not children:
            return f"components.{i}.components: must hold at least one component"
        selects = [c for c in children if c.get("type") in _SELECTS]
        if selects and len(children) > 1:
            return f"components.{i}: a select menu must be alone in its row"
        if len(children) > BUTTONS_PER_ROW:
            return f"components.{i}.components: must be {BUTTONS_PER_ROW} or fewer in length"
        for j, child in enumerate(children):
            where = f"components.{i}.components.{j}"
            problem = _component_problem(child, where, seen)
            if problem is not None:
                return problem
    return None


def _component_problem(child: JSON, where: str, seen: set[str]) -> str | None:
    kind = child.get("type")
    if kind == _BUTTON:
        if len(child.get("label") or "") > BUTTON_LABEL:
            return f"{where}.label: must be {BUTTON_LABEL} or fewer in length"
        if child.get("style") == _LINK_STYLE:
            return None if child.get("url") else f"{where}.url: a link button needs a url"
    elif kind in _SELECTS:
        options = child.get("options") or []
        if kind == 3 and not 1 <= len(options) <= SELECT_OPTIONS:
            return f"{where}.options: must be 1-{SELECT_OPTIONS} in length"
        for k, option in enumerate(options):
            for key in ("label", "value", "description"):
                if len(option.get(key) or "") > OPTION_TEXT:
                    return f"{where}.options.{k}.{key}: must be {OPTION_TEXT} or fewer in length"
        if len(child.get("placeholder") or "") > PLACEHOLDER:
            return f"{where}.placeholder: must be {PLACEHOLDER} or fewer in length"
    else:
        return f"{where}.type: not a component an action row may hold"
    custom_id = child.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID:
        return f"{where}.custom_id: must be 1-{CUSTOM_ID} characters"
    if custom_id in seen:
        return f"{where}.custom_id: component custom id cannot be duplicated"
    seen.add(custom_id)
    return None
