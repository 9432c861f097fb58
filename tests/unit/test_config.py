"""mailhop.config: the TOML file, embedded defaults, environment overrides, ConfigError."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from mailhop.config import Settings, load, parse_ip_range
from mailhop.errors import ConfigError

FULL_TOML = """\
[server]
name = "EXCH01"
fqdn = "Mail.Contoso.com"
data_dir = "/var/lib/mailhop"
store = "sqlite"

[[receive_connectors]]
name = "Relay"
bind = "0.0.0.0:25"
remote_ip_ranges = ["10.0.0.5", "10.1.0.0/16", "192.168.1.10-192.168.1.20"]
max_message_size = "25MB"

[[receive_connectors]]
name = "Submission"
bind = "[::1]:587"
max_message_size = "unlimited"

[queue]
message_retry_interval = "15m"
message_expiration_timeout = "2.00:00:00"
delay_notification_timeout = "4h"
"""

# A server name in the environment keeps the defaults independent of this host's name.
ENV = {"MAILHOP_SERVER_NAME": "EXCH09"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailhop.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def full(tmp_path: Path) -> Settings:
    return load(write(tmp_path, FULL_TOML), environ={})


# --- the documented keys ------------------------------------------------------------------


def test_server_section(full: Settings) -> None:
    assert full.server.name == "EXCH01"
    assert full.server.fqdn == "mail.contoso.com"
    assert full.server.data_dir == Path("/var/lib/mailhop")
    assert full.data_dir == Path("/var/lib/mailhop")
    assert full.server.store == "sqlite"
    assert full.sqlite_path == Path("/var/lib/mailhop/mailhop.db")


def test_receive_connectors(full: Settings) -> None:
    relay, submission = full.receive_connectors
    assert relay.name == "Relay"
    assert relay.bind == "0.0.0.0:25"
    assert relay.remote_ip_ranges == ["10.0.0.5", "10.1.0.0/16", "192.168.1.10-192.168.1.20"]
    assert relay.max_message_size == 25 * 1024 * 1024
    assert submission.bind == "[::1]:587"
    assert submission.max_message_size is None


def test_queue_section(full: Settings) -> None:
    assert full.queue.message_retry_interval == 900.0
    assert full.queue.message_expiration_timeout == 172_800.0
    assert full.queue.delay_notification_timeout == 14_400.0


def test_receive_connector_ranges(full: Settings) -> None:
    ip = ipaddress.ip_address
    assert full.receive_connectors[0].ranges() == [
        (ip("10.0.0.5"), ip("10.0.0.5")),
        (ip("10.1.0.0"), ip("10.1.255.255")),
        (ip("192.168.1.10"), ip("192.168.1.20")),
    ]


@pytest.mark.parametrize(
    ("key", "value", "seconds"),
    [
        ("message_retry_interval", "30s", 30.0),
        ("message_retry_interval", "00:05:00", 300.0),
        ("message_retry_interval", 600, 600.0),
        ("message_expiration_timeout", "1h30m", 5_400.0),
        ("message_expiration_timeout", "90.00:00:00", 7_776_000.0),
        ("delay_notification_timeout", "2d", 172_800.0),
    ],
)
def test_queue_durations_accept_every_form(
    tmp_path: Path, key: str, value: str | int, seconds: float
) -> None:
    literal = f'"{value}"' if isinstance(value, str) else str(value)
    settings = load(write(tmp_path, f"[queue]\n{key} = {literal}\n"), environ=ENV)
    assert getattr(settings.queue, key) == seconds


@pytest.mark.parametrize(
    ("value", "size"),
    [('"35 MB"', 36_700_160), ('"35 MB (36,700,160 bytes)"', 36_700_160), ("1048576", 1_048_576), ('"unlimited"', None)],
)
def test_receive_connector_sizes(tmp_path: Path, value: str, size: int | None) -> None:
    text = f'[[receive_connectors]]\nname = "R"\nmax_message_size = {value}\n'
    assert load(write(tmp_path, text), environ=ENV).receive_connectors[0].max_message_size == size


# --- embedded defaults --------------------------------------------------------------------


def test_defaults_when_the_file_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./mailhop.toml here
    settings = load(environ=ENV)
    assert settings.server.name == "EXCH09"
    assert settings.server.store == "sqlite"
    assert settings.server.data_dir == Path("data")
    assert settings.sqlite_path == Path("data/mailhop.db")
    assert settings.queue.message_retry_interval == 300.0
    assert settings.queue.message_expiration_timeout == 2 * 86_400.0
    assert settings.queue.delay_notification_timeout == 4 * 3_600.0
    [default] = settings.receive_connectors
    assert default.bind == "127.0.0.1:2525"
    assert default.name == "Default EXCH09"
    assert default.remote_ip_ranges == ["127.0.0.0/8", "::1"]
    assert default.max_message_size == 36 * 1024 * 1024


def test_default_file_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[server]\nname = "FROMFILE"\n')
    monkeypatch.chdir(tmp_path)
    assert load(environ={}).server.name == "FROMFILE"


def test_a_file_without_receive_connectors_gets_the_default_one(tmp_path: Path) -> None:
    settings = load(write(tmp_path, '[server]\nname = "EXCH05"\n'), environ={})
    assert [(c.name, c.bind) for c in settings.receive_connectors] == [("Default EXCH05", "127.0.0.1:2525")]


def test_an_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load(tmp_path / "missing.toml", environ={})


@pytest.mark.parametrize(
    ("store", "path"),
    [("sqlite", Path("/var/lib/mailhop/mailhop.db")), ("sqlite:/srv/q.db", Path("/srv/q.db")), ("sqlite:///srv/q.db", Path("/srv/q.db"))],
)
def test_sqlite_path(tmp_path: Path, store: str, path: Path) -> None:
    text = f'[server]\nname = "A"\ndata_dir = "/var/lib/mailhop"\nstore = "{store}"\n'
    assert load(write(tmp_path, text), environ={}).sqlite_path == path


# --- environment overrides ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "section", "key", "expected"),
    [
        ("MAILHOP_SERVER_NAME", "EXCH02", "server", "name", "EXCH02"),
        ("MAILHOP_SERVER_FQDN", "MX2.Contoso.com", "server", "fqdn", "mx2.contoso.com"),
        ("MAILHOP_SERVER_DATA_DIR", "/tmp/mh", "server", "data_dir", Path("/tmp/mh")),
        ("MAILHOP_QUEUE_MESSAGE_RETRY_INTERVAL", "1m", "queue", "message_retry_interval", 60.0),
        ("MAILHOP_QUEUE_MESSAGE_EXPIRATION_TIMEOUT", "1.00:00:00", "queue", "message_expiration_timeout", 86_400.0),
        ("MAILHOP_QUEUE_DELAY_NOTIFICATION_TIMEOUT", "30m", "queue", "delay_notification_timeout", 1_800.0),
        ("MAILHOP_QUEUE_GLITCH_RETRY_COUNT", "2", "queue", "glitch_retry_count", 2),
        ("MAILHOP_TRACKING_ENABLED", "false", "tracking", "enabled", False),
        ("MAILHOP_DELIVERY_CONNECT_TIMEOUT", "10s", "delivery", "connect_timeout", 10.0),
    ],
)
def test_environment_overrides_the_file(
    tmp_path: Path, variable: str, value: str, section: str, key: str, expected: object
) -> None:
    settings = load(write(tmp_path, FULL_TOML), environ={variable: value})
    assert getattr(getattr(settings, section), key) == expected


def test_environment_only_touches_its_key(tmp_path: Path) -> None:
    settings = load(write(tmp_path, FULL_TOML), environ={"MAILHOP_SERVER_NAME": "EXCH02"})
    assert settings.server.fqdn == "mail.contoso.com"
    assert settings.queue.message_retry_interval == 900.0


def test_environ_argument_replaces_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILHOP_SERVER_NAME", "FROMOS")
    path = write(tmp_path, FULL_TOML)
    assert load(path, environ={}).server.name == "EXCH01"
    assert load(path, environ={"MAILHOP_SERVER_NAME": "FROMARG"}).server.name == "FROMARG"


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    environ = {"MAILHOP_NOPE": "1", "MAILHOP_SERVER_BOGUS": "x", "PATH": "/bin"}
    assert load(write(tmp_path, FULL_TOML), environ=environ).server.name == "EXCH01"


def test_overrides_argument_beats_environment(tmp_path: Path) -> None:
    settings = load(
        write(tmp_path, FULL_TOML),
        overrides={"server": {"name": "FLAG"}},
        environ={"MAILHOP_SERVER_NAME": "ENV"},
    )
    assert settings.server.name == "FLAG"
    assert settings.server.fqdn == "mail.contoso.com"


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # unknown keys
        ('[server]\nname = "A"\nbogus = 1\n', "server.bogus"),
        ("[bogus]\nx = 1\n", "bogus"),
        ("top = 1\n", "top"),
        ('[[receive_connectors]]\nname = "R"\nport = 25\n', "receive_connectors.0.port"),
        ("[queue]\nretry = 1\n", "queue.retry"),
        # bad values
        ('[server]\nname = "bad name!"\n', "server.name"),
        ('[server]\nname = "A"\nfqdn = "bad_host"\n', "server.fqdn"),
        ('[server]\nname = "A"\nstore = "postgres"\n', "server.store"),
        ('[queue]\nmessage_retry_interval = "soon"\n', "queue.message_retry_interval"),
        ('[queue]\nmessage_expiration_timeout = "-1h"\n', "queue.message_expiration_timeout"),
        ('[queue]\ndelay_notification_timeout = "4 hours"\n', "queue.delay_notification_timeout"),
        ('[queue]\nmessage_retry_interval = "0s"\n', "message_retry_interval"),
        ("[queue]\nglitch_retry_count = 99\n", "queue.glitch_retry_count"),
        ('[[receive_connectors]]\nbind = "127.0.0.1:25"\n', "receive_connectors.0.name"),
        ('[[receive_connectors]]\nname = "R"\nbind = "nope"\n', "receive_connectors.0.bind"),
        ('[[receive_connectors]]\nname = "R"\nbind = "127.0.0.1:70000"\n', "receive_connectors.0.bind"),
        ('[[receive_connectors]]\nname = "R"\nmax_message_size = "huge"\n', "receive_connectors.0.max_message_size"),
        ('[[receive_connectors]]\nname = "R"\nremote_ip_ranges = ["10.0.0.300"]\n', "receive_connectors.0.remote_ip_ranges"),
        (
            '[[receive_connectors]]\nname = "R"\nremote_ip_ranges = ["10.0.0.9-10.0.0.1"]\n',
            "receive_connectors.0.remote_ip_ranges",
        ),
        (
            '[[receive_connectors]]\nname = "A"\n[[receive_connectors]]\nname = "a"\nbind = "127.0.0.1:26"\n',
            "receive_connectors",
        ),
        ('[[receive_connectors]]\nname = "A"\n[[receive_connectors]]\nname = "B"\n', "receive_connectors"),
    ],
)
def test_errors_raise_config_error_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    # ENV would mask a bad [server] name; files that set [server] need no host-independent name.
    environ = {} if "[server]" in text else ENV
    with pytest.raises(ConfigError) as info:
        load(path, environ=environ)
    message = str(info.value)
    assert key in message
    assert "\n" not in message


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\nname = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(path, environ={})


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("MAILHOP_SERVER_NAME", "bad name!", "server.name"),
        ("MAILHOP_QUEUE_MESSAGE_RETRY_INTERVAL", "whenever", "queue.message_retry_interval"),
        ("MAILHOP_QUEUE_GLITCH_RETRY_COUNT", "many", "queue.glitch_retry_count"),
    ],
)
def test_bad_environment_values_name_the_key(tmp_path: Path, variable: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(write(tmp_path, FULL_TOML), environ={variable: value})


# --- remote_ip_ranges ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("10.0.0.5", "10.0.0.5", "10.0.0.5"),
        (" 10.0.0.5 ", "10.0.0.5", "10.0.0.5"),
        ("10.1.0.0/16", "10.1.0.0", "10.1.255.255"),
        ("10.1.2.3/24", "10.1.2.0", "10.1.2.255"),  # host bits are allowed, as Exchange allows them
        ("192.168.1.10-192.168.1.20", "192.168.1.10", "192.168.1.20"),
        ("192.168.1.10 - 192.168.1.20", "192.168.1.10", "192.168.1.20"),
        ("10.0.0.1-10.0.0.1", "10.0.0.1", "10.0.0.1"),
        ("::1", "::1", "::1"),
        ("2001:db8::/126", "2001:db8::", "2001:db8::3"),
        ("2001:db8::1-2001:db8::9", "2001:db8::1", "2001:db8::9"),
    ],
)
def test_parse_ip_range(text: str, low: str, high: str) -> None:
    assert parse_ip_range(text) == (ipaddress.ip_address(low), ipaddress.ip_address(high))


@pytest.mark.parametrize(
    "text", ["", "10.0.0.300", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "10.0.0.0/33", "host.example.com", "10.0.0.1-"]
)
def test_parse_ip_range_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ip_range(text)


@pytest.mark.parametrize("item", ["10.0.0.5", "10.1.0.0/16", "192.168.1.10-192.168.1.20", "fe80::/10"])
def test_remote_ip_ranges_accept_each_form(tmp_path: Path, item: str) -> None:
    text = f'[[receive_connectors]]\nname = "R"\nremote_ip_ranges = ["{item}"]\n'
    assert load(write(tmp_path, text), environ=ENV).receive_connectors[0].remote_ip_ranges == [item]


@pytest.mark.parametrize("bind", ["0.0.0.0:8025", "[::]:8025", "192.0.2.10:8025", "admin.contoso.test:8025"])
def test_the_admin_api_beyond_loopback_needs_tls_or_an_explicit_yes(bind: str, tmp_path: Path) -> None:
    from mailhop.config import from_mapping

    with pytest.raises(ConfigError, match="is not a loopback address: give tls_certificate and tls_key"):
        from_mapping({"admin": {"bind": bind}})
    assert from_mapping({"admin": {"bind": bind, "allow_insecure_bind": True}}).admin.bind == bind
    tls = {"tls_certificate": str(tmp_path / "c.pem"), "tls_key": str(tmp_path / "k.pem")}
    assert from_mapping({"admin": {"bind": bind, **tls}}).admin.tls_certificate is not None
    for loopback in ("127.0.0.1:8025", "[::1]:8025", "localhost:8025"):
        assert from_mapping({"admin": {"bind": loopback}}).admin.bind == loopback
