"""A whole SMTP session driven by hypothesis: any sequence of commands, valid or not, gets
well-formed replies, never an unhandled exception, and leaves the server serving.

Each example opens a session on a real loopback socket to ``SMTPServer`` (with the
recording handler of test_smtp_server) and sends, one line at a time, commands drawn
from the grammar below: the verbs with plausible and hostile arguments (paths with
quotes, UTF-8, NUL and control characters, parameters, base64 and not), bodies after a
354, over-long lines and raw bytes.  Every reply is read and checked by ``RawClient``
(CRLF, one code per reply, an enhanced status code on every 4xx/5xx line); a 221 or
421 ends the session as the server means it to, anything else that closes the
connection fails the example.  Afterwards a new session still gets its 220, and the
handler never saw an address the parser should have refused.

``make test`` runs 150 examples of each (derandomized: the same ones every time);
``make fuzz`` runs ``FUZZ_EXAMPLES`` (default 100,000) random ones of each.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhop.smtp.address import valid_address
from tests.unit.smtp_helpers import RawClient
from tests.unit.test_smtp_server import FakeHandler, Harness

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)
RAW = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
LOCAL = st.sampled_from(["bob", "a.b", '"quoted x"', '"q\\"uote"', "bjørn", "x\x00y", "", "a..b", ".a", "%"])
DOMAIN = st.sampled_from(["fabrikam.test", "[127.0.0.1]", "[IPv6:::1]", "xn--bcher-kva.test", "bücher.test",
                          "-bad-.test", "a" * 70 + ".test", ""])
ADDRESS = st.builds(lambda local, d: f"{local}@{d}" if d else local, LOCAL, DOMAIN)
PATH = st.one_of(ADDRESS.map(lambda a: f"<{a}>"), st.just("<>"), ADDRESS, st.just("<@relay.test:bob@fabrikam.test>"),
                 st.just("<<bob@fabrikam.test>>"), TEXT)
PARAMS = st.lists(st.sampled_from(["SIZE=1000", "SIZE=99999999999999999999", "SIZE=x", "BODY=8BITMIME",
                                   "BODY=BINARYMIME", "SMTPUTF8", "RET=HDRS", "ENVID=a+2Bb", "NOTIFY=NEVER",
                                   "AUTH=<>", "X=" + "y" * 300, "=", "SIZE"]), max_size=4)


def _line(verb: str, arg: str, params: list[str]) -> bytes:
    return " ".join([verb + arg, *params]).encode("utf-8", "surrogatepass")


COMMANDS = st.one_of(
    st.builds(lambda v, n: f"{v} {n}".encode(), st.sampled_from(["EHLO", "HELO", "ehlo", "LHLO"]),
              st.sampled_from(["client.example", "[127.0.0.1]", "", "x" * 300, "a b"])),
    st.builds(lambda p, ps: _line("MAIL FROM:", p, ps), PATH, PARAMS),
    st.builds(lambda p, ps: _line("RCPT TO:", p, ps), PATH, PARAMS),
    st.builds(lambda p: f"MAIL FROM: {p}".encode(), PATH),
    st.sampled_from([b"DATA", b"RSET", b"NOOP", b"NOOP hello", b"VRFY bob", b"EXPN list", b"HELP", b"STARTTLS",
                     b"BDAT 10 LAST", b"BDAT 7", b"BDAT 0 LAST", b"BDAT x", b"AUTH LOGIN", b"AUTH CRAM-MD5", b"AUTH", b"QUIT", b"", b" ", b"MAIL", b"RCPT"]),
    st.builds(lambda u, p: b"AUTH PLAIN " + base64.b64encode(f"\0{u}\0{p}".encode()), TEXT, TEXT),
    st.builds(lambda b: b"AUTH PLAIN " + b, RAW),
    RAW,
    st.integers(500, 3000).map(lambda n: b"NOOP " + b"x" * n),
)
BODY = st.lists(st.one_of(TEXT.map(lambda t: t.encode()), st.sampled_from([b".", b"..", b".x", b"", b"From: a"]), RAW),
                max_size=8)


async def _session(port: int, commands: list[bytes], bodies: list[list[bytes]]) -> None:
    client = await RawClient.connect(port)
    try:
        assert (await client.read_reply()).code == 220
        for i, command in enumerate(commands):
            chunk = re.fullmatch(rb"BDAT (\d+)( LAST)?", command)
            if chunk:  # RFC 3030: the chunk's bytes follow the command, whatever the reply will be
                data = b"\r\n".join(bodies[i % len(bodies)]) if bodies else b""
                size = int(chunk.group(1))
                command += b"\r\n" + (data + b"x" * size)[:size]
                await client.send(command)
            else:
                await client.send(command + b"\r\n")
            reply = await client.read_reply()
            if reply.code in (221, 421):
                await client.expect_eof()
                return
            if reply.code == 354:  # in DATA: a body, the terminator, its reply
                lines = [line for line in bodies[i % len(bodies)] if line != b"."] if bodies else []
                await client.send(b"".join(line + b"\r\n" for line in lines) + b".\r\n")
                after = await client.read_reply()
                if after.code == 421:
                    await client.expect_eof()
                    return
            elif reply.code == 334:  # in an AUTH exchange: cancel it
                assert (await client.cmd(b"*")).code in (501, 535, 421)
    finally:
        await client.close()


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None, derandomize="FUZZ_EXAMPLES" not in os.environ, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(commands=st.lists(COMMANDS, min_size=1, max_size=14), bodies=st.lists(BODY, max_size=3))
def test_any_command_sequence_gets_well_formed_replies_and_leaves_the_server_serving(
        commands: list[bytes], bodies: list[list[bytes]]) -> None:
    async def run() -> None:
        harness = Harness()
        handler = FakeHandler()
        try:
            running = await harness.start(handler)
            await _session(running.port, commands, bodies)
            again = await harness.connect(running)  # the server still serves
            assert (await again.cmd("QUIT")).code == 221
        finally:
            await harness.close()
        for address in handler.mails + handler.rcpts:
            assert address == "" or valid_address(address), address

    asyncio.run(run())


REPLY_LINE = st.one_of(
    st.builds(lambda c, sep, t: c + sep + t, st.sampled_from([b"220", b"250", b"354", b"421", b"550", b"999", b"22", b"2x0"]),
              st.sampled_from([b" ", b"-", b"", b"\t"]), RAW),
    RAW, st.integers(100, 70_000).map(lambda n: b"250-" + b"x" * n),
)
PEER = st.lists(st.tuples(REPLY_LINE, st.sampled_from([b"\r\n", b"\n", b"\r", b""])), max_size=12).map(
    lambda parts: b"".join(line + end for line, end in parts))


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
          derandomize="FUZZ_EXAMPLES" not in os.environ, database=None)
@given(greeting=PEER, ehlo=PEER)
def test_whatever_a_next_hop_answers_the_client_fails_only_with_connection_failure(greeting: bytes, ehlo: bytes) -> None:
    from mailhop.errors import ConnectionFailure
    from mailhop.smtp.client import ClientConnection
    from mailhop.smtp.session import TlsPlan

    async def run() -> None:
        done = asyncio.Event()

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Everything at once, then EOF: the client never waits for more (no timeout runs).
            try:
                writer.write(greeting + ehlo)
                writer.write_eof()
                await reader.read()  # until the client is done
            except OSError:
                pass
            finally:
                writer.close()
                try:
                    await writer.wait_closed()
                except OSError:
                    pass
                done.set()

        server = await asyncio.start_server(peer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            conn = await ClientConnection.open("hop.test", "127.0.0.1", port, "exch01.contoso.test",
                                               tls=TlsPlan(starttls=False), connect_timeout=10, command_timeout=10)
        except ConnectionFailure as exc:
            assert 400 <= exc.reply.code < 600 and exc.reply.enhanced
        else:
            tx = await conn.send("alice@contoso.test", ["bob@fabrikam.test"], b"Subject: x\r\n\r\nhi\r\n")
            assert tx.recipients["bob@fabrikam.test"].code >= 400  # the peer is gone: never "delivered"
            conn.abort()
        finally:
            await asyncio.wait_for(done.wait(), 30)
            server.close()
            await server.wait_closed()

    asyncio.run(run())
