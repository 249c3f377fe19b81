"""Configuration loading: the shipped file, and errors that name file, line and key.

Expected lines are marked in the fixtures with a `# <-` comment, so the assertions stay right when a
fixture is edited; a few tests also spell the line number out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from smsgw.config import (
    KNOWN_PROFILES,
    CarrierConfig,
    ConfigError,
    ConfigIssue,
    GatewayConfig,
    load_config,
    parse_config,
)
from smsgw.tomlcheck import _Locator

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "config" / "gateway.toml"
FILE = "conf/test.toml"

BASE = """\
[gateway]
embedded_simulators = true

[control]
port = 12780

[carriers.omantel]
port = 12775
system_id = "gw"
password = "secret"
short_codes = ["90091", "90092"]

[carriers.ooredoo]
port = 12776
system_id = "gw"
password = "secret"
short_codes = ["90091"]

[simulators.omantel]
profile = "omantel"
port = 12775
system_id = "gw"
password = "secret"

[[routes]]
keyword = "HELP"
aliases = ["H"]
handler = "help"
"""


def after(header: str, lines: str, text: str = BASE) -> str:
    """BASE with `lines` inserted right below the first occurrence of `header`."""
    assert header in text
    return text.replace(header + "\n", header + "\n" + lines, 1)


def marked_line(text: str) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    assert len(lines) == 1, "a fixture marks exactly one line"
    return lines[0]


def errors_of(text: str, **kwargs: object) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE, **kwargs)  # type: ignore[arg-type]
    return info.value.issues


def only_error(text: str, **kwargs: object) -> ConfigIssue:
    issues = errors_of(text, **kwargs)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


# --- the shipped file ----------------------------------------------------------------------------


def test_shipped_config_loads() -> None:
    """The file in the repository is valid, with the handlers it names."""
    from smsgw.app import load_checked_config

    config = load_checked_config(str(SHIPPED))  # with every handler the features register
    assert isinstance(config, GatewayConfig)
    assert config.path == str(SHIPPED)
    assert [c.name for c in config.carriers] == ["omantel", "ooredoo", "friendi"]
    assert [s.name for s in config.simulators] == ["omantel", "ooredoo", "friendi"]
    assert config.embedded_simulators is True
    assert (config.control_host, config.control_port) == ("127.0.0.1", 12780)
    for carrier in config.carriers:
        sim = config.simulator(carrier.name)
        assert sim is not None and sim.profile == carrier.name
        assert carrier.host == sim.host == "127.0.0.1" and carrier.port == sim.port
        assert (carrier.system_id, carrier.password) == (sim.system_id, sim.password)
        assert carrier.short_codes == ("90091", "90092")
    assert [s.port for s in config.simulators] == [12775, 12776, 12777]
    help_route = config.routes[0]
    assert help_route.keyword == "HELP" and help_route.handler == "help"
    assert help_route.aliases == ("مساعدة", "H", "?") and help_route.short_codes == ()


def test_shipped_carriers_differ_like_real_smscs() -> None:
    """The three carriers exercise different binds, encodings, long-message methods and id formats."""
    config = load_config(SHIPPED)
    omantel, ooredoo, friendi = (config.carrier(n) for n in ("omantel", "ooredoo", "friendi"))
    assert (omantel.bind_mode, omantel.window, omantel.tps) == ("transceiver", 10, 200.0)
    assert (omantel.long_message, omantel.resp_id_format, omantel.receipt_id_format) == ("udh", "hex", "dec")
    assert omantel.mo_id_tlv == 0x1400
    assert (ooredoo.bind_mode, ooredoo.window, ooredoo.tps) == ("tx_rx", 20, 150.0)
    assert (ooredoo.long_message, ooredoo.resp_id_format, ooredoo.receipt_id_format) == ("sar", "dec", "dec")
    assert ooredoo.mo_id_tlv == 0x1401
    assert (friendi.bind_mode, friendi.window, friendi.tps) == ("transceiver", 5, 50.0)
    assert friendi.default_alphabet == "latin1" and omantel.default_alphabet == ooredoo.default_alphabet == "gsm7"
    assert (friendi.long_message, friendi.resp_id_format, friendi.receipt_id_format) == ("payload", "str", "str")
    assert friendi.mo_id_tlv == 0x1400


def test_lookup_helpers() -> None:
    config = parse_config(BASE, FILE)
    assert config.carrier("ooredoo").port == 12776
    with pytest.raises(KeyError):
        config.carrier("vodafone")
    assert config.simulator("omantel") is not None
    assert config.simulator("ooredoo") is None


def test_defaults_and_immutability() -> None:
    """Omitted keys take the documented defaults; the result cannot be changed by accident."""
    config = parse_config(BASE, FILE)
    carrier = config.carrier("omantel")
    assert carrier == CarrierConfig(
        name="omantel", port=12775, system_id="gw", password="secret", short_codes=("90091", "90092")
    )
    assert (carrier.window, carrier.tps, carrier.bind_mode) == (10, 100.0, "transceiver")
    assert (carrier.validity_s, carrier.mo_id_tlv, carrier.enabled) == (86400, None, True)
    assert config.store_path == "var/smsgw.sqlite3" and config.log_level == "info"
    assert config.simulator("omantel").tps is None  # type: ignore[union-attr]
    with pytest.raises(dataclasses.FrozenInstanceError):
        carrier.window = 5  # type: ignore[misc]


def test_password_is_not_in_repr() -> None:
    """Logging the config must not leak SMPP passwords."""
    config = parse_config(BASE, FILE)
    assert "secret" not in repr(config)


def test_tlv_tag_forms() -> None:
    """mo_id_tlv accepts an integer, a hex string and a decimal string, as specs print tags either way."""
    for written in ("5120", "0x1400", '"0x1400"', '"5120"'):
        text = after("[carriers.omantel]", f"mo_id_tlv = {written}\n")
        assert parse_config(text, FILE).carrier("omantel").mo_id_tlv == 0x1400


# --- one error at a time: file, line, key, message ------------------------------------------------


def test_example_from_the_requirement() -> None:
    """The message reads file:line: dotted.key: what is wrong, got <value as written>."""
    text = after("[carriers.omantel]", 'window = "ten"  # <-\n')
    assert marked_line(text) == 8
    assert str(only_error(text)) == (
        'conf/test.toml:8: carriers.omantel.window: must be an integer between 1 and 1000, got "ten"'
    )


CARRIER_CASES = [
    ('window = 0  # <-\n', "window", "between 1 and 1000, got 0"),
    ("window = 1001  # <-\n", "window", "between 1 and 1000, got 1001"),
    ("window = true  # <-\n", "window", "must be an integer between 1 and 1000, got true"),
    ("tps = 0  # <-\n", "tps", "greater than 0"),
    ("tps = nan  # <-\n", "tps", "got nan"),
    ("enquire_link_s = 30000  # <-\n", "enquire_link_s", "at most 3600, got 30000"),
    ("response_timeout_s = -1  # <-\n", "response_timeout_s", "greater than 0"),
    ('bind_mode = "tx"  # <-\n', "bind_mode", 'must be one of "transceiver", "tx_rx", got "tx"'),
    ('default_alphabet = "GSM7"  # <-\n', "default_alphabet", 'did you mean "gsm7"?'),
    ('long_message = "concat"  # <-\n', "long_message", 'must be one of "udh", "sar", "payload"'),
    ('resp_id_format = "hexa"  # <-\n', "resp_id_format", 'did you mean "hex"?'),
    ('receipt_id_format = 10  # <-\n', "receipt_id_format", "got 10"),
    ('mo_id_tlv = "0xZZ"  # <-\n', "mo_id_tlv", 'got "0xZZ"'),
    ("mo_id_tlv = 0x10000  # <-\n", "mo_id_tlv", "between 0x0001 and 0xFFFF"),
    ("mo_id_tlv = 0x0424  # <-\n", "mo_id_tlv", "0x0424 is message_payload"),
    ('system_type = "a_long_system_type"  # <-\n', "system_type", "at most 12 characters"),
    ("validity_s = 10  # <-\n", "validity_s", "between 60 and 604800"),
    ('validity_format = "relatif"  # <-\n', "validity_format", 'did you mean "relative"?'),
    ("source_addr_ton = 7  # <-\n", "source_addr_ton", "between 0 and 6"),
    ("dest_addr_npi = 2  # <-\n", "dest_addr_npi", "must be one of 0, 1, 3, 4, 6, 8, 9, 10, 14, 18"),
    ("registered_delivery = 64  # <-\n", "registered_delivery", "between 0 and 31"),
    ('enabled = "yes"  # <-\n', "enabled", 'must be true or false, got "yes"'),
    ('host = ""  # <-\n', "host", "must not be empty"),
    ("windw = 10  # <-\n", "windw", 'unknown key; did you mean "window"?'),
    ("colour = 10  # <-\n", "colour", "unknown key (known keys here: host, port, system_id"),
    ("reconnect_initial_s = 10.0\nreconnect_max_s = 5.0  # <-\n", "reconnect_max_s",
     "must not be less than reconnect_initial_s (10), got 5"),
]


@pytest.mark.parametrize("lines, key, message", CARRIER_CASES, ids=[c[0].split(" =")[0] for c in CARRIER_CASES])
def test_carrier_value_errors(lines: str, key: str, message: str) -> None:
    text = after("[carriers.omantel]", lines)
    issue = only_error(text)
    assert (issue.file, issue.line, issue.key) == (FILE, marked_line(text), f"carriers.omantel.{key}")
    assert message in issue.message
    assert str(issue).startswith(f"{FILE}:{marked_line(text)}: carriers.omantel.{key}: ")


def test_replaced_values() -> None:
    """Errors in values that BASE already sets, including the SMPP length limits."""
    cases = [
        ('system_id = "gw"', 'system_id = "sixteen_chars_id"  # <-', "system_id",
         'must be at most 15 characters (SMPP system_id is 16 octets including the terminating NUL), '
         'got "sixteen_chars_id" (16 characters)'),
        ('system_id = "gw"', 'system_id = "gw\u00e9"  # <-', "system_id",
         "must contain only ASCII characters (SMPP system_id is an ASCII C-Octet string)"),
        ("port = 12775", "port = 70000  # <-", "port", "must be an integer between 0 and 65535, got 70000"),
        ("port = 12775", "port = -1  # <-", "port", "must be an integer between 0 and 65535, got -1"),
        ('short_codes = ["90091", "90092"]', "short_codes = []  # <-", "short_codes",
         'must list at least one short code, e.g. ["90091"]'),
        ('short_codes = ["90091", "90092"]', 'short_codes = "90091"  # <-', "short_codes",
         'must be an array, e.g. ["..."], got "90091"'),
    ]
    for old, new, key, message in cases:
        text = BASE.replace(old, new, 1)
        issue = only_error(text)
        assert (issue.line, issue.key, issue.message) == (marked_line(text), f"carriers.omantel.{key}", message)


def test_reconnect_bounds_blame_the_line_written() -> None:
    """When reconnect_max_s is left at its default, the error points at reconnect_initial_s."""
    text = after("[carriers.omantel]", "reconnect_initial_s = 100  # <-\n")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.omantel.reconnect_initial_s")
    assert issue.message == "must not exceed reconnect_max_s (60, the default), got 100"


def test_password_too_long_is_not_echoed() -> None:
    text = BASE.replace('password = "secret"', 'password = "supersecret"  # <-', 1)
    issue = only_error(text)
    assert (issue.line, issue.key) == (10, "carriers.omantel.password")
    assert issue.line == marked_line(text)
    assert issue.message == (
        "must be at most 8 characters (SMPP password is 9 octets including the terminating NUL), "
        "got a string of 11 characters"
    )


def test_short_code_elements_are_located() -> None:
    """An element of a multi-line array is reported on its own line, with its index."""
    text = BASE.replace(
        'short_codes = ["90091", "90092"]',
        'short_codes = [\n  "90091",\n  90092,  # <-\n]',
        1,
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.omantel.short_codes[1]")
    assert issue.message == 'must be a string of digits in quotes, e.g. "90092", got 90092'

    text = BASE.replace('short_codes = ["90091", "90092"]', 'short_codes = ["90091", "9009a", "90091"]  # <-', 1)
    issues = errors_of(text)
    assert [(i.line, i.key) for i in issues] == [
        (marked_line(text), "carriers.omantel.short_codes[1]"),
        (marked_line(text), "carriers.omantel.short_codes[2]"),
    ]
    assert "3 to 8 ASCII digits" in issues[0].message and "listed twice" in issues[1].message


def test_missing_key_points_at_table_header() -> None:
    text = BASE.replace("[carriers.ooredoo]", "[carriers.ooredoo]  # <-").replace("port = 12776\n", "")
    issue = only_error(text)
    assert (issue.line, issue.key, issue.message) == (13, "carriers.ooredoo.port", "required key is missing")
    assert issue.line == marked_line(text)


def test_bad_carrier_name() -> None:
    text = BASE.replace("[carriers.ooredoo]", "[carriers.Ooredoo]  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.Ooredoo")
    assert "lower-case letters, digits and _" in issue.message

    # The keys of a misnamed carrier are still checked, and a quoted name is shown quoted.
    text = BASE.replace("[carriers.ooredoo]", '[carriers."oo redoo"]').replace("port = 12776", "port = 1e3")
    issues = errors_of(text)
    assert [(i.line, i.key) for i in issues] == [(13, 'carriers."oo redoo"'), (14, 'carriers."oo redoo".port')]


def test_carrier_that_is_not_a_table() -> None:
    text = 'embedded = 1\n[carriers]\nwindow = 10  # <-\n'
    issues = errors_of(text)
    assert [(i.line, i.key) for i in issues] == [(1, "embedded"), (3, "carriers.window")]
    assert "must be a table [carriers.<name>] describing one carrier, got 10" in issues[1].message


def test_no_carriers() -> None:
    issue = only_error("[gateway]\nlog_level = \"info\"\n")
    assert (issue.line, issue.key) == (1, "carriers")
    assert "at least one carrier" in issue.message


def test_gateway_and_control_errors() -> None:
    cases = [
        ("[gateway]", 'log_level = "INFO"  # <-\n', "gateway.log_level", 'did you mean "info"?'),
        ("[gateway]", "shutdown_timeout_s = 0  # <-\n", "gateway.shutdown_timeout_s", "greater than 0"),
        ("[gateway]", "mo_reassembly_timeout_s = \"2m\"  # <-\n", "gateway.mo_reassembly_timeout_s", 'got "2m"'),
        ("[gateway]", 'store_path = ""  # <-\n', "gateway.store_path", "must not be empty"),
        ("[control]", "host = 127  # <-\n", "control.host", "must be a string, got 127"),
        ("[control]", "prot = 1  # <-\n", "control.prot", 'did you mean "port"?'),
    ]
    for header, lines, key, message in cases:
        text = after(header, lines)
        issue = only_error(text)
        assert (issue.line, issue.key) == (marked_line(text), key), issue
        assert message in issue.message, issue

    text = BASE.replace("embedded_simulators = true", "embedded_simulators = 1  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key) == (2, "gateway.embedded_simulators")
    assert issue.message == "must be true or false, got 1"


def test_store_url_selects_postgresql() -> None:
    """`store_url` in [gateway] names a PostgreSQL database instead of the SQLite file."""
    config = parse_config(after("[gateway]", 'store_url = "postgresql://smsgw@db1:5432/smsgw"\n'), FILE)
    assert config.store_url == "postgresql://smsgw@db1:5432/smsgw"
    assert config.store_location == "postgresql://smsgw@db1:5432/smsgw"
    assert parse_config(BASE, FILE).store_location == "var/smsgw.sqlite3"


def test_store_url_errors_name_the_line() -> None:
    cases = [
        ('store_url = "mysql://u@h/db"  # <-\n', "must be a postgresql:// URL"),
        ('store_url = "postgresql://u@h:5432"  # <-\n', "names no database"),
        ('store_url = "postgresql://u@h:port/db"  # <-\n', "not a valid URL"),
        ('store_url = "postgresql://u:secret@h/db"  # <-\n', "must not hold a password"),
        ('store_url = ""  # <-\n', "must not be empty"),
        ('store_path = "var/x.sqlite3"\nstore_url = "postgresql://u@h/db"  # <-\n', "either store_path (SQLite) or store_url"),
    ]
    for lines, message in cases:
        text = after("[gateway]", lines)
        issue = only_error(text)
        assert (issue.line, issue.key) == (marked_line(text), "gateway.store_url"), issue
        assert message in issue.message, issue
        assert "secret" not in str(issue)


def test_unknown_table_suggests_the_right_one() -> None:
    text = "[gatway]  # <-\nlog_level = \"debug\"\n" + BASE
    issue = only_error(text)
    assert (issue.line, issue.key, issue.message) == (1, "gatway", 'unknown key; did you mean "gateway"?')


# --- cross-field checks -----------------------------------------------------------------------------


def test_port_zero_needs_an_embedded_simulator() -> None:
    text = BASE.replace("port = 12776", "port = 0  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.ooredoo.port")
    assert "there is no [simulators.ooredoo]" in issue.message

    text = BASE.replace("port = 12775", "port = 0  # <-", 1).replace(
        "embedded_simulators = true", "embedded_simulators = false"
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.omantel.port")
    assert "embedded_simulators = false" in issue.message

    text = BASE.replace("port = 12775", "port = 0", 2)  # carrier and simulator both ephemeral
    assert parse_config(text, FILE).carrier("omantel").port == 0


def test_simulator_errors() -> None:
    text = BASE.replace("[simulators.omantel]", "[simulators.omantell]  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "simulators.omantell")
    assert 'no carrier named "omantell"' in issue.message and 'did you mean "omantel"?' in issue.message

    text = BASE.replace('profile = "omantel"', 'profile = "omantell"  # <-')
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "simulators.omantel.profile")
    assert issue.message == (
        'must be one of "omantel", "ooredoo", "friendi", got "omantell"; did you mean "omantel"?'
    )

    text = BASE.replace('profile = "omantel"\n', "").replace("[simulators.omantel]", "[simulators.omantel]  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key, issue.message) == (
        marked_line(text), "simulators.omantel.profile", "required key is missing")

    text = after("[simulators.omantel]", "tps = 0  # <-\n")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "simulators.omantel.tps")

    assert "vodafone" not in KNOWN_PROFILES
    text = BASE.replace('profile = "omantel"', 'profile = "vodafone"')
    simulator = parse_config(text, FILE, known_profiles=["vodafone"]).simulator("omantel")
    assert simulator is not None and simulator.profile == "vodafone"


def test_simulator_port_collisions() -> None:
    text = BASE.replace("port = 12775", "port = 12780", 2).replace(
        "[simulators.omantel]\nprofile = \"omantel\"\nport = 12780",
        "[simulators.omantel]\nprofile = \"omantel\"\nport = 12780  # <-",
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "simulators.omantel.port")
    assert issue.message == "12780 is already used by control.port (line 5)"


def test_embedded_simulator_credentials_must_match() -> None:
    text = BASE.replace('password = "secret"', 'password = "other"  # <-', 1)
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.omantel.password")
    assert issue.message == (
        "differs from simulators.omantel.password (line 23); "
        "the bind to the embedded simulator would fail with ESME_RINVPASWD"
    )
    assert "other" not in str(issue)
    # Not embedded: the carrier may well bind elsewhere with other credentials.
    parse_config(text.replace("embedded_simulators = true", "embedded_simulators = false"), FILE)


def test_route_errors() -> None:
    text = after("[[routes]]", 'short_codes = ["90093"]  # <-\n')
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "routes[0].short_codes[0]")
    assert issue.message == '"90093" is not served by any carrier (they serve "90091", "90092")'

    text = BASE.replace('handler = "help"', 'handler = "hlep"  # <-')
    assert parse_config(text, FILE).routes[0].handler == "hlep"  # no handler list: not checked
    issue = only_error(text, known_handlers=["help", "parking"])
    assert (issue.line, issue.key) == (marked_line(text), "routes[0].handler")
    assert issue.message == 'unknown handler "hlep"; did you mean "help"? (known: "help", "parking")'

    text = BASE.replace('aliases = ["H"]', 'aliases = ["H", "help me"]  # <-')
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "routes[0].aliases[1]")
    assert "single word" in issue.message

    text = BASE.replace('keyword = "HELP"\n', "").replace("[[routes]]", "[[routes]]  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "routes[0].keyword")
    assert issue.message == "required key is missing"

    text = BASE.replace("[[routes]]", "[routes]  # <-")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "routes")
    assert "[[routes]]" in issue.message


def test_duplicate_keywords_on_overlapping_short_codes() -> None:
    """A word may mean one thing per short code; case does not make it different."""
    second = '\n[[routes]]\nkeyword = "PARK"\naliases = ["h"]  # <-\nhandler = "parking"\n{codes}'
    text = BASE + second.format(codes="")
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "routes[1].aliases[0]")
    assert issue.message == (
        '"h" is already used by routes[0].aliases[0] (line 27) on every short code; '
        "a message could not be routed unambiguously"
    )

    text = BASE + second.format(codes='short_codes = ["90092"]\n')
    assert "on 90092;" in only_error(text).message

    # Same word on short codes that do not overlap is fine.
    text = BASE.replace('handler = "help"', 'handler = "help"\nshort_codes = ["90091"]')
    parse_config(text + second.format(codes='short_codes = ["90092"]\n'), FILE)

    text = BASE.replace('aliases = ["H"]', 'aliases = ["H", "help"]  # <-')
    issue = only_error(text)
    assert (issue.key, issue.line) == ("routes[0].aliases[1]", marked_line(text))
    assert "routes[0].keyword" in issue.message


# --- how the text is located ------------------------------------------------------------------------


def test_dotted_keys_and_inline_tables_are_located() -> None:
    carrier = 'port = 1, system_id = "gw", password = "x", short_codes = ["90091"]'
    text = (
        f"carriers.omantel = {{ {carrier}, window = 0 }}  # <-\n"
        "[carriers.ooredoo]\n"
        f"{carrier.replace(', ', chr(10))}\n"
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (1, "carriers.omantel.window")

    text = (
        "[carriers]\n"
        f"omantel = {{ {carrier} }}\n"
        f"ooredoo = {{ {carrier}, tps = -1 }}  # <-\n"
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (3, "carriers.ooredoo.tps")

    text = (
        "carriers.omantel.port = 1\n"
        'carriers.omantel.system_id = "gw"\n'
        'carriers.omantel.password = "x"\n'
        'carriers.omantel.short_codes = ["90091"]\n'
        "carriers.omantel.tps = -5  # <-\n"
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "carriers.omantel.tps")

    text = (
        f"carriers.omantel = {{ {carrier} }}\n"
        "routes = [\n"
        '  { keyword = "HELP", handler = "help" },\n'
        '  { keyword = "HELP", handler = "x" },  # <-\n'
        "]\n"
    )
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "routes[1].keyword")


def test_strings_that_look_like_toml_do_not_confuse_the_locator() -> None:
    text = after(
        "[gateway]",
        'store_path = """\n[carriers.omantel] # not a header\nwindow = 1\n"""\n'
        "log_level = '''\n[[routes]]'''\n",
    )
    text = after("[carriers.omantel]", 'system_type = "#[y]=\\"z\\""\nwindow = 0  # <-\n', text)
    issues = errors_of(text)
    assert [(i.line, i.key) for i in issues] == [
        (6, "gateway.log_level"),
        (marked_line(text), "carriers.omantel.window"),
    ]


def test_locator_handles_arrays_of_tables_and_quoted_keys() -> None:
    text = (
        "[[a]]\n"  # 1
        "x = 1\n"  # 2
        "[[a]]\n"  # 3
        "[[a.b]]\n"  # 4
        '"quoted key" = [ { y = 1 },\n'  # 5
        "  { y = 2 } ]\n"  # 6
        "[a.c]\n"  # 7
        "z = 1979-05-27 07:32:00\n"  # 8
    )
    locator = _Locator(text)
    assert locator.line_of(("a", 0, "x")) == 2
    assert locator.line_of(("a", 1)) == 3
    assert locator.line_of(("a", 1, "b", 0)) == 4
    assert locator.line_of(("a", 1, "b", 0, "quoted key", 1, "y")) == 6
    assert locator.line_of(("a", 1, "c", "z")) == 8
    assert locator.line_of(("a", 1, "c", "missing")) == 7
    assert locator.line_of(("nowhere",)) == 1


# --- many errors at once, syntax errors, files --------------------------------------------------------


def test_all_errors_are_reported_in_file_order() -> None:
    text = BASE.replace('[gateway]\n', '[gateway]\nlog_level = "loud"\n')  # line 2, shifts the rest by 1
    text = text.replace('password = "secret"\n', 'password = "secret"\nwindw = 3\n', 1)  # line 12, shifts by 1
    text = text.replace("port = 12776", "port = 99999")  # line 16
    text = text.replace('handler = "help"', 'handler = "nope"')  # line 30
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE, known_handlers=["help"])
    error = info.value
    assert [(i.line, i.key) for i in error.issues] == [
        (2, "gateway.log_level"),
        (12, "carriers.omantel.windw"),
        (16, "carriers.ooredoo.port"),
        (30, "routes[0].handler"),
    ]
    lines = str(error).splitlines()
    assert len(lines) == 4 and all(line.startswith(f"{FILE}:") for line in lines)
    assert lines[1] == f'{FILE}:12: carriers.omantel.windw: unknown key; did you mean "window"?'


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BASE.replace("port = 12776", "port = 12776 12777"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.key) == (str(path), 14, "")
    assert str(issue).startswith(f"{path}:14: TOML syntax error at column ")

    with pytest.raises(ConfigError) as info:
        parse_config('[gateway]\nstore_path = "unterminated', FILE)
    assert str(info.value).startswith(f"{FILE}:2: TOML syntax error at end of file: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert str(info.value).startswith(f"{tmp_path / 'absent.toml'}: cannot read the file")

    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[gateway]\nstore_path = "caf\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(info.value) == f"{bad}:2: the file is not valid UTF-8"


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_config(path).carrier("omantel").port == 12775


# --- the admin API ([admin], [[admin.tokens]]) --------------------------------------------------------

ADMIN = """
[admin]
host = "127.0.0.1"
port = 12790

[[admin.tokens]]
name = "backoffice"
token = "backoffice-token-0123456789"
role = "admin"

[[admin.tokens]]
name = "monitoring"
token = "monitoring-token-0123456789"
role = "read-only"
"""


def test_shipped_admin_api() -> None:
    """Enabled on loopback 12790 with a named admin and read-only token; tokens stay out of repr."""
    admin = load_config(SHIPPED).admin
    assert (admin.enabled, admin.host, admin.port) == (True, "127.0.0.1", 12790)
    assert [(t.name, t.role) for t in admin.tokens] == [("backoffice", "admin"), ("monitoring", "read-only")]
    assert all(t.token not in repr(load_config(SHIPPED)) for t in admin.tokens)


def test_admin_api_is_off_without_a_section() -> None:
    admin = parse_config(BASE, FILE).admin
    assert admin.enabled is False and admin.tokens == ()
    config = parse_config(BASE + ADMIN, FILE).admin
    assert config.enabled and [t.name for t in config.tokens] == ["backoffice", "monitoring"]
    assert parse_config(BASE + '[admin]\nenabled = false\n', FILE).admin.enabled is False


ADMIN_CASES = [
    ('host = "127.0.0.1"', 'host = "0.0.0.0"  # <-', "admin.host",
     'must be a loopback address such as "127.0.0.1" or "::1" (the admin API has no TLS; put a reverse proxy in '
     'front to reach it remotely), got "0.0.0.0"'),
    ('host = "127.0.0.1"', 'host = "localhost"  # <-', "admin.host", "must be a loopback address"),
    ("port = 12790", "port = 70000  # <-", "admin.port", "must be an integer between 0 and 65535, got 70000"),
    ("port = 12790", "port = 12780  # <-", "admin.port", "12780 is already used by control.port (line 5)"),
    ("port = 12790", "port = 12775  # <-", "admin.port", "12775 is already used by simulators.omantel.port (line 21)"),
    ('role = "admin"', 'role = "root"  # <-', "admin.tokens[0].role",
     'must be one of "read-only", "admin", got "root"'),
    ('role = "read-only"', 'role = "readonly"  # <-', "admin.tokens[1].role", 'did you mean "read-only"?'),
    ('name = "monitoring"', 'name = "backoffice"  # <-', "admin.tokens[1].name",
     '"backoffice" is already the name of admin.tokens[0] (line 35)'),
    ('name = "monitoring"', 'name = "Monitoring Team"  # <-', "admin.tokens[1].name",
     "must use only lower-case letters, digits, _ and -"),
    ('token = "monitoring-token-0123456789"', 'token = "backoffice-token-0123456789"  # <-', "admin.tokens[1].token",
     "is the same token as admin.tokens[0] (line 36); every token must be unique"),
    ('token = "monitoring-token-0123456789"', 'token = "short-secret"  # <-', "admin.tokens[1].token",
     "must be at least 20 characters, got 12"),
    ('token = "monitoring-token-0123456789"', 'token = "monitoring token 0123456789"  # <-', "admin.tokens[1].token",
     "must be printable ASCII without spaces"),
    ('token = "monitoring-token-0123456789"', "token = 12345678901234567890  # <-", "admin.tokens[1].token",
     "must be a string, got a value of type integer"),
    ('role = "read-only"', 'role = "read-only"\nscope = "all"  # <-', "admin.tokens[1].scope", "unknown key"),
]


@pytest.mark.parametrize("old, new, key, message", ADMIN_CASES, ids=[c[2] + ":" + c[1][:20] for c in ADMIN_CASES])
def test_admin_errors(old: str, new: str, key: str, message: str) -> None:
    text = (BASE + ADMIN)
    # Replace in the admin part only (BASE has port and token-like lines of its own).
    at = text.index("[admin]")
    text = text[:at] + text[at:].replace(old, new, 1)
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), key), issue
    assert message in issue.message, issue
    for token in ("backoffice-token-0123456789", "monitoring-token-0123456789", "short-secret", "monitoring token"):
        assert token not in str(issue)  # error output ends up in logs: never a token in it


def test_admin_enabled_needs_a_token() -> None:
    text = BASE + '\n[admin]  # <-\nenabled = true\n'
    issue = only_error(text)
    assert (issue.line, issue.key) == (marked_line(text), "admin.tokens")
    assert issue.message == "at least one [[admin.tokens]] is required when the admin API is enabled"


def test_abuse_and_ussd_budget_settings() -> None:
    """The senders the abuse guard remembers and a carrier's USSD budget are config, range-checked."""
    text = BASE + "\n[abuse]\nmax_tracked_senders = 2000\n"
    text = after("[carriers.omantel]", "ussd_tps = 40.0\n", text)
    config = parse_config(text, FILE)
    assert config.abuse.max_tracked == 2000
    assert config.carrier("omantel").ussd_tps == 40.0 and config.carrier("ooredoo").ussd_tps == 100.0
    cases = [
        ("[abuse]", "max_tracked_senders = 10  # <-\n", "abuse.max_tracked_senders", "between 100 and 10000000"),
        ("[carriers.omantel]", "ussd_tps = 0  # <-\n", "carriers.omantel.ussd_tps", "greater than 0"),
    ]
    for header, lines, key, message in cases:
        text = after(header, lines, BASE + "\n[abuse]\n")
        issue = only_error(text)
        assert (issue.line, issue.key) == (marked_line(text), key), issue
        assert message in issue.message, issue
