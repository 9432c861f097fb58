"""CHUNKING (RFC 3030): BDAT received, in step whatever the reply, with DATA's CRLF rules."""

from __future__ import annotations

from tests.unit.test_smtp_server import Harness, smtp, transaction

__all__ = ["smtp"]


def bdat(chunk: bytes, last: bool = False) -> bytes:
    return f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk


async def test_chunking_and_dsn_are_advertised(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.connect(running)
    keywords = (await client.ehlo()).keywords
    assert "CHUNKING" in keywords and "DSN" in keywords


async def test_a_body_in_chunks_is_handed_over_whole(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@contoso.test", ["b@fabrikam.test"])
    await client.send(bdat(b"Subject: chunks\r\n\r\nHel"))
    first = await client.read_reply()
    assert (first.code, first.texts[0]) == (250, "2.0.0 22 octets received")
    # A dot line is data here, not an end; bare LF and a CR split from its LF become CRLF once.
    await client.send(bdat(b"lo\r\n.\r\nbare\nx\r"))
    assert (await client.read_reply()).code == 250
    await client.send(bdat(b"\nok", last=True))
    assert (await client.read_reply()).code == 250
    assert running.handler.data == [b"Subject: chunks\r\n\r\nHello\r\n.\r\nbare\r\nx\r\nok"]
    assert running.handler.data_envelopes == [("a@contoso.test", ["b@fabrikam.test"])]


async def test_bdat_can_be_pipelined_with_mail_and_rcpt(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await client.send(b"MAIL FROM:<a@contoso.test>\r\nRCPT TO:<b@fabrikam.test>\r\n"
                      + bdat(b"Subject: p\r\n\r\nx", last=True) + b"NOOP\r\n")
    codes = [(await client.read_reply()).code for _ in range(4)]
    assert codes == [250, 250, 250, 250]
    assert running.handler.data == [b"Subject: p\r\n\r\nx"]


async def test_a_refused_bdat_still_reads_its_chunk(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await client.send(b"BDAT 9 LAST\r\nNOOP\r\nxyz")  # before MAIL: refused, and the 9 bytes are data
    refused = await client.read_reply()
    assert refused.code == 503 and refused.enhanced == "5.5.1"
    assert (await client.cmd("NOOP")).code == 250  # in step: the NOOP inside the chunk was not run
    await transaction(client, "a@contoso.test", ["b@fabrikam.test"])
    assert (await client.cmd("DATA")).code == 354  # nothing of the refused chunk is in this transaction


async def test_too_big_in_chunks_is_552_after_last_and_the_session_goes_on(smtp: Harness) -> None:
    running = await smtp.start(max_message_size=10)
    client = await smtp.session(running)
    await transaction(client, "a@contoso.test", ["b@fabrikam.test"])
    await client.send(b"BDAT 8\r\n12345678")
    assert (await client.read_reply()).code == 250
    await client.send(b"BDAT 8 LAST\r\n12345678")
    final = await client.read_reply()
    assert final.code == 552 and final.enhanced == "5.3.4"
    assert running.handler.data == []
    assert (await client.cmd("NOOP")).code == 250


async def test_data_after_bdat_and_rset_during_bdat(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@contoso.test", ["b@fabrikam.test"])
    await client.send(b"BDAT 4\r\nabcd")
    assert (await client.read_reply()).code == 250
    assert (await client.cmd("DATA")).code == 503
    assert (await client.cmd("RSET")).code == 250
    await transaction(client, "a@contoso.test", ["c@fabrikam.test"])
    await client.send(b"BDAT 2 LAST\r\nok")
    assert (await client.read_reply()).code == 250
    assert running.handler.data == [b"ok"]  # nothing of the chunk before RSET


async def test_a_bdat_size_that_cannot_be_read_ends_the_session(smtp: Harness) -> None:
    running = await smtp.start()
    client = await smtp.session(running)
    await transaction(client, "a@contoso.test", ["b@fabrikam.test"])
    reply = await client.cmd("BDAT lots")
    assert reply.code == 421 and reply.enhanced == "4.5.4"
    await client.expect_eof()


async def test_binarymime_only_where_enabled_and_only_in_bdat(smtp: Harness) -> None:
    plain = await smtp.start()
    client = await smtp.session(plain)
    assert "BINARYMIME" not in (await client.ehlo()).keywords
    assert (await client.cmd("MAIL FROM:<a@contoso.test> BODY=BINARYMIME")).code == 501
    running = await smtp.start(binary_mime=True)
    client = await smtp.session(running)
    assert "BINARYMIME" in (await client.ehlo()).keywords
    assert (await client.cmd("MAIL FROM:<a@contoso.test> BODY=BINARYMIME")).code == 250
    assert (await client.cmd("RCPT TO:<b@fabrikam.test>")).code == 250
    refused = await client.cmd("DATA")
    assert refused.code == 503 and "BDAT" in refused.texts[0]
    binary = b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\rbare\ncr\r"
    await client.send(bdat(binary, last=True))
    assert (await client.read_reply()).code == 250
    assert running.handler.data == [binary]  # binary: CR and LF are data, nothing is changed
