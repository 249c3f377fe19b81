"""config/ussd.toml → `MenuConfig`, or one ConfigError naming file, line and key for every problem.

Checked here, so a bad edit stops the gateway at start-up rather than showing a handset a broken
screen: the service code's form, that every menu item exists and does exactly one thing (opens a
menu or starts a known flow), that every text exists in both languages, and that every template
uses only the placeholders its screen fills in.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smsgw.message import Lang
from smsgw.tomlcheck import (
    MISSING,
    Checker,
    ConfigError,
    Table,
    build_checked,
    read_toml_text,
)

__all__ = ["CONFIG_FILE", "FLOWS", "TEXT_FIELDS", "ConfigError", "Item", "MenuConfig", "load_menu_config",
           "parse_menu_config"]

CONFIG_FILE = "ussd.toml"

#: The flows a menu item may start (handlers/ussd/engine.py implements them).
FLOWS = ("parking.book", "parking.extend", "parking.mine", "status.lookup", "help", "language")

#: Every text, with the placeholders its template may use.
TEXT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "main_title": (), "language_title": (), "language_name": (), "nav": (), "exit": (), "more": ("key",),
    "invalid": (), "goodbye": (), "unavailable": (),
    "ask_plate": (), "bad_plate": (), "ask_zone": (), "ask_duration": (), "ask_extend": ("plate",),
    "ask_which": (), "confirm": (), "confirm_book": ("plate", "zone", "duration", "amount"),
    "confirm_extend": ("plate", "until", "duration", "amount"), "free": (), "no_parking": (),
    "mine_title": (), "mine_item": ("plate", "until", "zone", "ticket"),
    "ask_ref": (), "bad_ref": (),
    "minutes": ("m",), "hours": ("h",), "hours_minutes": ("h", "m"),
    "timeout": ("code",), "sms_hint": ("code",), "help": ("code",),
}

_SERVICE_CODE_RE = re.compile(r"\*[0-9]{2,6}#")
_ID_RE = re.compile(r"[a-z][a-z0-9_]*")
_SHORT_CODE_RE = re.compile(r"[0-9]{3,8}")
_KEY_RE = re.compile(r"[1-9][0-9]")  # two digits: never a menu number the user could mean, never 0/00
MAX_ITEMS = 20


@dataclass(frozen=True)
class Item:
    """A menu entry: its label per language, and the menu it opens or the flow it starts."""

    id: str
    labels: Mapping[Lang, str]
    menu: str | None = None
    flow: str | None = None

    def label(self, lang: Lang) -> str:
        return self.labels[lang]


@dataclass(frozen=True)
class MenuConfig:
    path: str
    service_code: str  # "*141#"
    ask_language: bool
    default_language: Lang
    more_key: str
    sms_short_code: str
    languages: tuple[Lang, ...]  # in the order of the language screen
    menus: Mapping[str, tuple[str, ...]]  # menu id → item ids; "main" first
    items: Mapping[str, Item]
    texts: Mapping[Lang, Mapping[str, str]]

    def text(self, lang: Lang, name: str, **values: object) -> str:
        """The text `name` in `lang`, its placeholders filled from `values`."""
        return self.texts[lang][name].format(**values)


def load_menu_config(path: str | os.PathLike[str]) -> MenuConfig:
    """Read and check config/ussd.toml; raise ConfigError naming file, line and key."""
    name = os.fspath(path)
    return parse_menu_config(read_toml_text(name), name)


def parse_menu_config(text: str, path: str = "<string>") -> MenuConfig:
    return build_checked(text, path, _build)


# ------------------------------------------------------------------------------------------------


def _build(checker: Checker, data: dict[str, Any], path: str) -> MenuConfig | None:
    root = Table(checker, (), data)
    service = Table(checker, ("service",), root.table("service", {}) or {})
    code = service.string("code", "*141#", min_len=1)
    if code is not None and not _SERVICE_CODE_RE.fullmatch(code):
        service.error("code", f'must look like "*141#" (a star, 2 to 6 digits, a hash), got "{code}"')
        code = None
    ask_language = service.boolean("ask_language", True)
    default_language = service.choice("default_language", "en", tuple(lang.value for lang in Lang))
    more_key = service.string("more_key", "98", min_len=1)
    if more_key is not None and not _KEY_RE.fullmatch(more_key):
        service.error("more_key", f'must be two digits from "10" to "99" (0 and 00 are taken), got "{more_key}"')
        more_key = None
    sms_short_code = service.string("sms_short_code", "90091", min_len=1)
    if sms_short_code is not None and not _SHORT_CODE_RE.fullmatch(sms_short_code):
        service.error("sms_short_code", f'must be 3 to 8 digits, got "{sms_short_code}"')
        sms_short_code = None
    service.finish()

    items = _items(checker, root)
    menus = _menus(checker, root, items)
    texts = _texts(checker, root)
    root.finish()
    if None in (code, ask_language, default_language, more_key, sms_short_code, items, menus, texts) or checker.issues:
        return None
    return MenuConfig(
        path=path,
        service_code=code,
        ask_language=ask_language,
        default_language=Lang(default_language),
        more_key=more_key,
        sms_short_code=sms_short_code,
        languages=(Lang.EN, Lang.AR),
        menus=menus,
        items=items,
        texts=texts,
    )


def _items(checker: Checker, root: Table) -> dict[str, Item] | None:
    section = root.table("items", MISSING)
    if not isinstance(section, dict):
        return None
    items: dict[str, Item] = {}
    for item_id, raw in section.items():
        where = ("items", item_id)
        if not isinstance(raw, dict):
            checker.error(where, "must be a table [items.<id>] with a label per language and a menu or a flow")
            continue
        if not _ID_RE.fullmatch(item_id):
            checker.error(where, "an item id is lower-case letters, digits and _")
        t = Table(checker, where, raw)
        labels = {lang: t.string(lang.value, min_len=1) for lang in Lang}
        menu = t.string("menu", None, min_len=1)
        flow = t.choice("flow", None, FLOWS)
        t.finish()
        if (menu is None) == (flow is None) and "menu" not in raw and "flow" not in raw:
            t.error("flow", f'each item needs either menu = "<menu id>" or flow = one of {", ".join(FLOWS)}')
        elif "menu" in raw and "flow" in raw:
            t.error("flow", "an item opens a menu or starts a flow, not both")
        for lang, label in labels.items():
            if label is not None and "\n" in label:
                t.error(lang.value, "a label is one line")
        if all(label is not None for label in labels.values()):
            items[item_id] = Item(item_id, labels, menu, flow)  # type: ignore[arg-type]
    return items


def _menus(checker: Checker, root: Table, items: dict[str, Item] | None) -> dict[str, tuple[str, ...]] | None:
    section = root.table("menus", MISSING)
    if not isinstance(section, dict):
        return None
    t = Table(checker, ("menus",), section)
    menus: dict[str, tuple[str, ...]] = {}
    if "main" not in section:
        t.error("main", 'required: the first menu, e.g. main = ["parking", "status", "help"]')
    for menu_id in section:
        listed = t.array(menu_id)
        if listed is None:
            continue
        if not _ID_RE.fullmatch(menu_id):
            t.error(menu_id, "a menu id is lower-case letters, digits and _")
        if not 1 <= len(listed) <= MAX_ITEMS:
            t.error(menu_id, f"must list 1 to {MAX_ITEMS} items, got {len(listed)}")
        for i, item_id in enumerate(listed):
            if not isinstance(item_id, str) or (items is not None and item_id not in items):
                known = ", ".join(sorted(items or ()))
                checker.error(("menus", menu_id, i), f"no item {item_id!r} under [items] (known: {known})")
        if len(set(listed)) != len(listed):
            t.error(menu_id, "lists an item twice")
        menus[menu_id] = tuple(str(i) for i in listed)
    t.finish()
    for item in (items or {}).values():
        if item.menu is not None and item.menu not in section:
            checker.error(("items", item.id, "menu"), f'no menu "{item.menu}" under [menus]')
    return menus


def _texts(checker: Checker, root: Table) -> dict[Lang, dict[str, str]] | None:
    section = root.table("texts", MISSING)
    if not isinstance(section, dict):
        return None
    texts: dict[Lang, dict[str, str]] = {}
    top = Table(checker, ("texts",), section)
    for lang in Lang:
        raw = top.table(lang.value, MISSING)
        if not isinstance(raw, dict):
            continue
        t = Table(checker, ("texts", lang.value), raw)
        got: dict[str, str] = {}
        for key, allowed in TEXT_FIELDS.items():
            value = t.string(key, min_len=1)
            if value is None:
                continue
            problem = _template_problem(value, allowed)
            if problem:
                t.error(key, problem)
                continue
            got[key] = value
        t.finish()
        texts[lang] = got
    top.finish()
    return texts if len(texts) == len(Lang) else None


def _template_problem(template: str, allowed: tuple[str, ...]) -> str | None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"is not a valid template ({exc}); write {{{{ and }}}} for literal braces"
    unknown = [name for name in fields if name not in allowed]
    if unknown:
        can = ", ".join("{" + a + "}" for a in allowed) or "none"
        return f"unknown placeholder {{{unknown[0]}}} (this text can use: {can})"
    return None
