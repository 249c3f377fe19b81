"""The USSD menu engine: navigation, flows and screens over config/ussd.toml, as pure functions.

A dialogue is a `State` (JSON-serialisable: the channel stores it with the session). Each handset
input goes through `handle(state, text)`, which returns the next `Step`: the new state and its
screen, or an `Effect` when only a service can answer (is this a plate? what does it cost? book
it). The caller (handlers/ussd/app.py) performs the effect and hands the result, plain data, to
`resume`. So the engine does no I/O, reads no clock and can be tested with literal results.

Keys: `0` back (at the main menu: exit), `00` main menu, `more_key` (98) the next page.
A choice list is numbered from 1 and keeps its numbers across pages. An input that fits nothing
re-shows the screen with a one-line notice ("Invalid choice.") above it.

Flows (`FLOWS` in config.py) and their effects:
    parking.book    plate → zone (skipped if there is one) → duration → confirm
                    effects parking.plate {text}, parking.quote {plate, zone, minutes},
                    parking.book {plate, zone, minutes}
    parking.extend  parking.sessions {} → which car (if several) → duration → confirm
                    effects parking.quote {.., ticket}, parking.extend {plate, minutes}
    parking.mine    parking.sessions {} → the list (final)
    status.lookup   reference → status.lookup {ref} (final)
    help            the help text, paged
    language        language.set {lang} → the main menu
Effect results are mappings; {"unavailable": true} from any effect ends with the "unavailable" text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from handlers.ussd.config import MenuConfig
from smsgw.message import Lang
from smsgw.textnorm import fold_digits
from smsgw.ussd.screen import paginate

__all__ = ["Effect", "MenuEngine", "ParkingChoices", "Screen", "State", "Step", "ZoneChoice"]

KEY_BACK = "0"
KEY_MAIN = "00"
MAIN = "main"


@dataclass(frozen=True)
class ZoneChoice:
    code: str
    names: Mapping[str, str]  # lang value → name
    durations: tuple[int, ...]  # minutes a stay may be booked or extended by


@dataclass(frozen=True)
class ParkingChoices:
    """What the parking flows offer, read from the parking configuration."""

    zones: tuple[ZoneChoice, ...]

    def zone(self, code: str | None) -> ZoneChoice:
        for zone in self.zones:
            if zone.code == code:
                return zone
        return self.zones[0]


@dataclass(frozen=True)
class State:
    """Where one dialogue stands."""

    lang: str = ""  # "" until chosen
    trail: tuple[str, ...] = (MAIN,)  # menus from main to the current one (or the one a flow left)
    flow: str = ""  # item id of the running flow
    step: str = ""
    history: tuple[str, ...] = ()  # steps of the flow before `step`, for 0 Back
    values: Mapping[str, Any] = field(default_factory=dict)
    page: int = 0
    notice: str = ""  # text name shown once above the screen
    result: str = ""  # a final text, shown page by page; the last page ends the dialogue

    def to_json(self) -> str:
        data = asdict(self)
        data["values"] = dict(self.values)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        data["trail"] = tuple(data["trail"])
        data["history"] = tuple(data["history"])
        return cls(**data)


@dataclass(frozen=True)
class Screen:
    text: str
    end: bool


@dataclass(frozen=True)
class Effect:
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """The engine's answer: a screen to show, or an effect to perform first (then `resume`)."""

    state: State
    screen: Screen | None = None
    effect: Effect | None = None


class MenuEngine:
    """Menus and flows of one MenuConfig; `parking` None when parking is not offered."""

    def __init__(self, config: MenuConfig, parking: ParkingChoices | None = None) -> None:
        self.config = config
        self.parking = parking
        self._menu_title_item = {item.menu: item for item in config.items.values() if item.menu is not None}

    # -- entry points -------------------------------------------------------------------------

    def begin(self, lang: Lang | None) -> Step:
        """The first screen: the main menu, or the language screen for a number without a language."""
        if lang is None and self.config.ask_language:
            return self._show(State(flow="language", step="choose"))
        return self._show(State(lang=(lang or self.config.default_language).value))

    def handle(self, state: State, text: str) -> Step:
        """One handset input."""
        answer = fold_digits(text).strip()
        state = replace(state, notice="")
        if answer == self.config.more_key:
            pages = self._pages(state)
            if state.page + 1 < len(pages):
                return self._show(replace(state, page=state.page + 1))
            return self._invalid(state)
        if state.lang and answer == KEY_MAIN:
            return self._show(State(lang=state.lang))
        if answer == KEY_BACK and (state.lang or state.flow != "language"):
            return self._back(state)
        if state.result:
            return self._invalid(state)  # a final text offers only more / back / main
        if state.flow:
            return self._flow_input(state, answer)
        return self._menu_input(state, answer)

    def resume(self, state: State, effect: Effect, result: Mapping[str, Any]) -> Step:
        """An effect's result: carry on from where `handle` asked for it."""
        if result.get("unavailable"):
            return self._final(state, self._t(state, "unavailable"))
        values = dict(state.values)
        name = effect.name
        if name == "language.set":
            return self._show(State(lang=effect.args["lang"]))
        if name == "parking.plate":
            if not result.get("plate"):
                return self._invalid(state, "bad_plate")
            values["plate"] = result["plate"]
            return self._after_plate(replace(state, values=values))
        if name == "parking.quote":
            values["amount"] = result.get("amount") or self._t(state, "free")
            return self._go(replace(state, values=values), "confirm")
        if name in ("parking.book", "parking.extend"):
            return self._final(state, str(result["text"]))
        if name == "parking.sessions":
            return self._sessions(state, list(result.get("sessions") or ()))
        if name == "status.lookup":
            if result.get("invalid"):
                return self._invalid(state, "bad_ref")
            return self._final(state, str(result["text"]))
        raise ValueError(f"no flow waits for effect {name!r}")

    def render(self, state: State) -> Screen:
        """The screen `state` shows."""
        pages = self._pages(state)
        page = min(state.page, len(pages) - 1)
        return Screen(pages[page], bool(state.result) and page == len(pages) - 1)

    def lang_of(self, state: State) -> Lang:
        return Lang(state.lang) if state.lang else self.config.default_language

    # -- navigation ---------------------------------------------------------------------------

    def _menu_input(self, state: State, answer: str) -> Step:
        items = self.config.menus[state.trail[-1]]
        number = int(answer) if answer.isdigit() else 0
        if not 1 <= number <= len(items):
            return self._invalid(state)
        item = self.config.items[items[number - 1]]
        if item.menu is not None:
            return self._show(replace(state, trail=(*state.trail, item.menu), page=0))
        assert item.flow is not None
        return self._start(replace(state, flow=item.id, step="", history=(), values={}, page=0))

    def _back(self, state: State) -> Step:
        if state.flow and state.history and not state.result:
            *rest, previous = state.history
            return self._show(replace(state, step=previous, history=tuple(rest), page=0))
        if state.flow:
            return self._show(replace(state, flow="", step="", history=(), values={}, page=0, result=""))
        if len(state.trail) > 1:
            return self._show(replace(state, trail=state.trail[:-1], page=0))
        return self._final(state, self._t(state, "goodbye"))

    def _invalid(self, state: State, notice: str = "invalid") -> Step:
        return self._show(replace(state, notice=notice, page=0))

    def _final(self, state: State, text: str) -> Step:
        return self._show(replace(state, result=text, page=0, notice=""))

    def _show(self, state: State) -> Step:
        return Step(state, self.render(state))

    def _go(self, state: State, step: str) -> Step:
        """Move the flow to `step`, remembering the current one for 0 Back."""
        history = (*state.history, state.step) if state.step else state.history
        return self._show(replace(state, step=step, history=history, page=0))

    # -- flows --------------------------------------------------------------------------------

    def _flow_kind(self, state: State) -> str:
        if state.flow == "language":
            return "language"
        return self.config.items[state.flow].flow or ""

    def _start(self, state: State) -> Step:
        kind = self._flow_kind(state)
        if kind.startswith("parking.") and self.parking is None:
            return self._final(state, self._t(state, "unavailable"))
        if kind == "help":
            return self._show(replace(state, step="show"))
        if kind == "language":
            return self._show(replace(state, step="choose"))
        if kind == "parking.book":
            return self._show(replace(state, step="plate"))
        if kind in ("parking.extend", "parking.mine"):
            return Step(replace(state, step="sessions"), effect=Effect("parking.sessions"))
        if kind == "status.lookup":
            return self._show(replace(state, step="ref"))
        raise ValueError(f"unknown flow {kind!r}")

    def _flow_input(self, state: State, answer: str) -> Step:
        kind, step, values = self._flow_kind(state), state.step, state.values
        if kind == "language":
            number = int(answer) if answer.isdigit() else 0
            if not 1 <= number <= len(self.config.languages):
                return self._invalid(state)
            lang = self.config.languages[number - 1].value
            return Step(state, effect=Effect("language.set", {"lang": lang}))
        if kind == "help":
            return self._invalid(state)
        if kind == "status.lookup":
            if not answer:
                return self._invalid(state, "bad_ref")
            return Step(state, effect=Effect("status.lookup", {"ref": answer}))
        if step == "plate":
            if not answer:
                return self._invalid(state, "bad_plate")
            return Step(state, effect=Effect("parking.plate", {"text": answer}))
        if step == "zone":
            zone = self._pick(self._zone_options(state), answer)
            if zone is None:
                return self._invalid(state)
            return self._go(replace(state, values={**values, "zone": zone}), "duration")
        if step == "which":
            session = self._pick([(s, s["plate"]) for s in values.get("sessions", ())], answer)
            if session is None:
                return self._invalid(state)
            return self._go(replace(state, values={**values, "session": session}), "duration")
        if step == "duration":
            minutes = self._pick(self._duration_options(state), answer)
            if minutes is None:
                return self._invalid(state)
            state = replace(state, values={**values, "minutes": minutes})
            return Step(state, effect=Effect("parking.quote", self._quote_args(state)))
        if step == "confirm":
            if answer != "1":
                return self._invalid(state)
            if kind == "parking.book":
                args = {"plate": values["plate"], "zone": values["zone"], "minutes": values["minutes"]}
                return Step(state, effect=Effect("parking.book", args))
            session = values["session"]
            return Step(state, effect=Effect("parking.extend", {"plate": session["plate"], "minutes": values["minutes"]}))
        return self._invalid(state)

    def _after_plate(self, state: State) -> Step:
        assert self.parking is not None
        if len(self.parking.zones) == 1:
            # One zone: nothing to choose; Back from the duration goes straight to the plate.
            only = {**state.values, "zone": self.parking.zones[0].code}
            history = (*state.history, state.step)
            return self._show(replace(state, values=only, step="duration", history=history, page=0))
        return self._go(state, "zone")

    def _sessions(self, state: State, sessions: list[Mapping[str, Any]]) -> Step:
        if self._flow_kind(state) == "parking.mine":
            if not sessions:
                return self._final(state, self._t(state, "no_parking"))
            lines = [self._t(state, "mine_title")]
            lines += [self._t(state, "mine_item", plate=s["plate"], until=s["until"], zone=s["zone"],
                              ticket=s["ticket"]) for s in sessions]
            return self._final(state, "\n".join(lines))
        if not sessions:
            return self._final(state, self._t(state, "no_parking"))
        values = {**state.values, "sessions": [dict(s) for s in sessions]}
        if len(sessions) == 1:
            values["session"] = dict(sessions[0])
            return self._show(replace(state, values=values, step="duration", page=0))
        return self._show(replace(state, values=values, step="which", page=0))

    def _quote_args(self, state: State) -> dict[str, Any]:
        values = state.values
        if self._flow_kind(state) == "parking.book":
            return {"plate": values["plate"], "zone": values["zone"], "minutes": values["minutes"]}
        session = values["session"]
        return {"plate": session["plate"], "zone": session["zone"], "minutes": values["minutes"],
                "ticket": session["ticket"]}

    # -- choices ------------------------------------------------------------------------------

    @staticmethod
    def _pick(options: Sequence[tuple[Any, str]], answer: str) -> Any:
        number = int(answer) if answer.isdigit() else 0
        return options[number - 1][0] if 1 <= number <= len(options) else None

    def _zone_options(self, state: State) -> list[tuple[str, str]]:
        assert self.parking is not None
        return [(z.code, z.names.get(state.lang) or z.code) for z in self.parking.zones]

    def _duration_options(self, state: State) -> list[tuple[int, str]]:
        assert self.parking is not None
        values = state.values
        code = values["session"]["zone"] if "session" in values else values.get("zone")
        return [(m, self.duration_label(state, m)) for m in self.parking.zone(code).durations]

    def duration_label(self, state: State, minutes: int) -> str:
        hours, rest = divmod(minutes, 60)
        if not hours:
            return self._t(state, "minutes", m=rest)
        if not rest:
            return self._t(state, "hours", h=hours)
        return self._t(state, "hours_minutes", h=hours, m=rest)

    # -- screens ------------------------------------------------------------------------------

    def _t(self, state: State, name: str, **values: object) -> str:
        return self.config.text(self.lang_of(state), name, **values)

    def _pages(self, state: State) -> list[str]:
        body, tail = self._content(state)
        if state.notice:
            body = self._t(state, state.notice) + "\n" + body
        more = self._t(state, "more", key=self.config.more_key)
        return paginate(body, more=more, tail=tail)

    def _content(self, state: State) -> tuple[str, str]:
        """(body, tail) of the screen `state` shows: the tail is the navigation line."""
        if state.result:
            return state.result, ""
        nav = self._t(state, "nav") if state.lang else ""
        if not state.flow:
            menu = state.trail[-1]
            items = [self.config.items[i] for i in self.config.menus[menu]]
            lang = self.lang_of(state)
            title = self._t(state, "main_title") if menu == MAIN else self._menu_title(menu, lang)
            lines = [title] + [f"{n} {item.label(lang)}" for n, item in enumerate(items, 1)]
            return "\n".join(lines), self._t(state, "exit") if len(state.trail) == 1 else nav
        kind, step, values = self._flow_kind(state), state.step, state.values
        if kind == "language":
            if state.lang:
                title = self._t(state, "language_title")
            else:
                title = " / ".join(self.config.text(lang, "language_title") for lang in self.config.languages)
            names = [self.config.text(lang, "language_name") for lang in self.config.languages]
            return "\n".join([title] + [f"{n} {name}" for n, name in enumerate(names, 1)]), nav
        if kind == "help":
            return self._t(state, "help", code=self.config.service_code), nav
        if kind == "status.lookup":
            return self._t(state, "ask_ref"), nav
        if step == "plate":
            return self._t(state, "ask_plate"), nav
        if step == "zone":
            return self._choices(self._t(state, "ask_zone"), self._zone_options(state)), nav
        if step == "which":
            options = [(s, f'{s["plate"]} ({s["until"]})') for s in values.get("sessions", ())]
            return self._choices(self._t(state, "ask_which"), options), nav
        if step == "duration":
            if "session" in values:
                head = self._t(state, "ask_extend", plate=values["session"]["plate"])
            else:
                head = self._t(state, "ask_duration")
            return self._choices(head, self._duration_options(state)), nav
        if step == "confirm":
            duration = self.duration_label(state, values["minutes"])
            if kind == "parking.book":
                zone = dict(self._zone_options(state)).get(values["zone"], values["zone"])
                text = self._t(state, "confirm_book", plate=values["plate"], zone=zone, duration=duration,
                               amount=values["amount"])
            else:
                session = values["session"]
                text = self._t(state, "confirm_extend", plate=session["plate"], until=session["until"],
                               duration=duration, amount=values["amount"])
            return text + "\n" + self._t(state, "confirm"), nav
        raise ValueError(f"nothing to show for flow {kind!r} step {step!r}")

    def _menu_title(self, menu: str, lang: Lang) -> str:
        item = self._menu_title_item.get(menu)
        return item.label(lang) if item is not None else menu

    @staticmethod
    def _choices(head: str, options: Sequence[tuple[Any, str]]) -> str:
        return "\n".join([head] + [f"{n} {label}" for n, (_, label) in enumerate(options, 1)])
