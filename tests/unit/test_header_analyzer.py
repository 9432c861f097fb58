"""mailhop.headers.analyzer and mailhop.headers.received: tracing a message through its headers.

The samples are written the way each server writes its Received: header, folded the
way each one folds (Gmail's "Show original" with eight spaces, Exchange with one,
Postfix and Exim with a tab), with times that agree with each other.
"""

from __future__ import annotations

import datetime as dt

import pytest

from mailhop.errors import ValidationError
from mailhop.headers import analyzer, block, received
from mailhop.headers.analyzer import CLOCK_SKEW, NO_TIME, NO_TLS, UNPARSED, analyze
from mailhop.receive import stamp
from mailhop.smtp.server import Session, TlsInfo

# Exchange 2019 -> Exchange Online Protection (smart host) -> Gmail, as in "Outbound mail
# flow in Exchange 2019", Figure 6; seen in Gmail's "Show original".
FIGURE_6 = """\
Delivered-To: j.wesselius.test@gmail.com
Received: by 2002:a05:6a10:8c0e:b0:4a1:5e2d:3b4f with SMTP id k14csp3471812pxw;
        Mon, 4 Oct 2021 01:01:09 -0700 (PDT)
X-Google-Smtp-Source: ABdhPJwq5Ydx0Zl3n8cFh2kq
X-Received: by 2002:a17:906:4c4b:: with SMTP id d11mr16207263ejw.287.1633334469123;
        Mon, 04 Oct 2021 01:01:09 -0700 (PDT)
ARC-Seal: i=1; a=rsa-sha256; t=1633334469; cv=none;
        d=google.com; s=arc-20160816;
        b=Qm9ndXMgc2lnbmF0dXJl
Return-Path: <jaap@contoso.com>
Received: from EUR05-DB8-obe.outbound.protection.outlook.com (mail-db8eur05on2093.outbound.protection.outlook.com. [40.107.20.93])
        by mx.google.com with ESMTPS id z3si1234567ejm.312.2021.10.04.01.01.08
        for <j.wesselius.test@gmail.com>
        (version=TLS1_2 cipher=ECDHE-ECDSA-AES128-GCM-SHA256 bits=128/128);
        Mon, 04 Oct 2021 01:01:08 -0700 (PDT)
Received-SPF: pass (google.com: domain of jaap@contoso.com designates 40.107.20.93 as permitted sender) client-ip=40.107.20.93;
Received: from AM0PR01CA0123.eurprd01.prod.exchangelabs.com (2603:10a6:208:1::12)
 by AM6PR0502MB3911.eurprd05.prod.outlook.com (2603:10a6:209:3::20) with
 Microsoft SMTP Server (version=TLS1_2,
 cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4566.22; Mon, 4 Oct
 2021 08:01:06 +0000
Received: from DB8EUR05FT010.eop-eur05.prod.protection.outlook.com
 (2603:10a6:208:1:cafe::4a) by AM0PR01CA0123.outlook.office365.com
 (2603:10a6:208:1::12) with Microsoft SMTP Server (version=TLS1_2,
 cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4566.22 via Frontend
 Transport; Mon, 4 Oct 2021 08:01:04 +0000
Received: from EXCH02.contoso.com (20.61.12.34) by
 DB8EUR05FT010.mail.protection.outlook.com (10.233.238.130) with Microsoft SMTP
 Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id
 15.20.4566.14 via Frontend Transport; Mon, 4 Oct 2021 08:01:04 +0000
Received: from EXCH01.contoso.com (10.0.0.5) by EXCH02.contoso.com (10.0.0.6)
 with Microsoft SMTP Server (version=TLS1_2,
 cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.2.1118.7; Mon, 4 Oct 2021
 10:01:02 +0200
Received: from EXCH01.contoso.com ([fe80::1c2d:3e4f:5a6b:7c8d]) by
 EXCH01.contoso.com ([fe80::1c2d:3e4f:5a6b:7c8d%12]) with mapi id
 15.02.1118.007; Mon, 4 Oct 2021 10:01:01 +0200
From: Jaap Wesselius <jaap@contoso.com>
To: "j.wesselius.test@gmail.com" <j.wesselius.test@gmail.com>
Subject: =?us-ascii?Q?Test_via_the_EOP_smarthost?=
Thread-Topic: Test via the EOP smarthost
Date: Mon, 4 Oct 2021 08:01:00 +0000
Message-ID: <8f1c2e3d4b5a4c6d9e0f1a2b3c4d5e6f@EXCH01.contoso.com>
Content-Type: text/plain; charset="us-ascii"
MIME-Version: 1.0

Hello from Exchange 2019.
Received: from a.body.line (pretending to be a header) by nobody; Mon, 4 Oct 2021 09:00:00 +0000
"""

# An application hands mail to an internal Postfix relay in clear text; the relay's
# clock is 2m18s fast; the receiving Postfix runs amavis on localhost.
POSTFIX_SKEW = """\
Return-Path: <alice@example.org>
Delivered-To: bob@fabrikam.com
Received: from mx.fabrikam.com (localhost [127.0.0.1])
\tby mx.fabrikam.com (Postfix) with ESMTP id 4HNl2z0c1Dz1xq4
\tfor <bob@fabrikam.com>; Tue,  5 Oct 2021 07:13:05 +0000 (UTC)
Received: from mx.fabrikam.com ([127.0.0.1])
\tby localhost (mx.fabrikam.com [127.0.0.1]) (amavisd-new, port 10024)
\twith ESMTP id aB3dE5fG7hJ9 for <bob@fabrikam.com>;
\tTue,  5 Oct 2021 07:13:04 +0000 (UTC)
Received: from relay.example.org (relay.example.org [198.51.100.25])
\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
\t(No client certificate requested)
\tby mx.fabrikam.com (Postfix) with ESMTPS id 4HNl2y3TvKz1xq2
\tfor <bob@fabrikam.com>; Tue,  5 Oct 2021 07:13:02 +0000 (UTC)
Received: from app01.internal.example.org (app01.internal.example.org [10.20.0.15])
\tby relay.example.org (Postfix) with ESMTP id 4HNl2x0Z3Qz9sT1
\tfor <bob@fabrikam.com>; Tue,  5 Oct 2021 09:15:20 +0200 (CEST)
Received: by app01.internal.example.org (Postfix, from userid 1001)
\tid 4HNl2w6PqRz5kL8; Tue,  5 Oct 2021 09:15:19 +0200 (CEST)
Date: Tue,  5 Oct 2021 09:15:19 +0200 (CEST)
From: Alice <alice@example.org>
To: bob@fabrikam.com
Subject: Nightly report
Message-Id: <20211005071519.4HNl2w6PqRz5kL8@app01.internal.example.org>
"""

# A laptop submits to Exim with AUTH over TLS 1.3; Exim relays to an older Exim (4.92).
EXIM = """\
Received: from mail.example.net ([198.51.100.7])
\tby mx.example.com with esmtps  (TLS1.2:ECDHE_RSA_AES_256_GCM_SHA384:256)
\t(Exim 4.92)
\t(envelope-from <alice@example.net>)
\tid 1mXYZb-0007Qx-Ef
\tfor carol@example.com; Tue, 05 Oct 2021 10:20:33 +0000
Received: from [192.0.2.44] (helo=laptop)
\tby mail.example.net with esmtpsa  (TLS1.3) tls TLS_AES_256_GCM_SHA384
\t(Exim 4.94.2)
\t(envelope-from <alice@example.net>)
\tid 1mXYZa-0001ab-Cd
\tfor carol@example.com; Tue, 05 Oct 2021 11:20:31 +0100
Subject: lunch?
"""

# Gmail to Gmail: SMTPS inside Google, then Google's own hand-off to the mailbox.
GMAIL = """\
Received: by 2002:a17:906:3a4c:0:0:0:0 with SMTP id a12csp2345678ejf;
        Tue, 5 Oct 2021 01:02:04 -0700 (PDT)
X-Received: by 2002:a05:6512:2a9:: with SMTP id m9mr2345678lfu.123.1633420924000;
        Tue, 05 Oct 2021 01:02:04 -0700 (PDT)
Received: from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])
        by mx.google.com with SMTPS id x12sor123.2021.10.05.01.02.03
        for <dave@gmail.com>
        (Google Transport Security);
        Tue, 05 Oct 2021 01:02:03 -0700 (PDT)
Date: Tue, 5 Oct 2021 10:02:01 +0200
Message-ID: <CAF=abc123@mail.gmail.com>
Subject: hi
"""

EXCHANGE_EOP = (  # as Outlook's "Internet headers" box shows them: CRLF, unfolded
    "Received: from AM0PR01CA0123.outlook.office365.com (2603:10a6:208:1::12) by "
    "AM6PR0502MB3911.eurprd05.prod.outlook.com (2603:10a6:209:3::20) with Microsoft SMTP "
    "Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4566.22 "
    "via Frontend Transport; Mon, 4 Oct 2021 08:01:06 +0000\r\n"
    "Received: from EXCH01.contoso.com (10.0.0.5) by EXCH02.contoso.com (10.0.0.6) with "
    "Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) "
    "id 15.2.1118.7; Mon, 4 Oct 2021 10:01:02 +0200\r\n"
)


def hosts(text: str) -> list[tuple[str | None, str | None, str | None]]:
    return [(h.header.from_host, h.header.from_ip, h.header.by_host) for h in analyze(text).hops]


# --- Exchange -> EOP -> Gmail ------------------------------------------------------------


def test_figure_6_hops_oldest_first_with_hosts_and_ips() -> None:
    assert hosts(FIGURE_6) == [
        ("EXCH01.contoso.com", "fe80::1c2d:3e4f:5a6b:7c8d", "EXCH01.contoso.com"),
        ("EXCH01.contoso.com", "10.0.0.5", "EXCH02.contoso.com"),
        ("EXCH02.contoso.com", "20.61.12.34", "DB8EUR05FT010.mail.protection.outlook.com"),
        ("DB8EUR05FT010.eop-eur05.prod.protection.outlook.com", "2603:10a6:208:1:cafe::4a",
         "AM0PR01CA0123.outlook.office365.com"),
        ("AM0PR01CA0123.eurprd01.prod.exchangelabs.com", "2603:10a6:208:1::12",
         "AM6PR0502MB3911.eurprd05.prod.outlook.com"),
        ("EUR05-DB8-obe.outbound.protection.outlook.com", "40.107.20.93", "mx.google.com"),
        (None, None, None),
    ]


def test_figure_6_protocols_tls_ids_and_via() -> None:
    hops = analyze(FIGURE_6).hops
    assert [h.header.protocol for h in hops] == [
        "MAPI", "Microsoft SMTP Server", "Microsoft SMTP Server", "Microsoft SMTP Server",
        "Microsoft SMTP Server", "ESMTPS", "SMTP",
    ]
    assert [h.header.tls for h in hops] == [False, True, True, True, True, True, False]
    assert hops[1].header.tls_detail == "TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    assert hops[5].header.tls_detail == "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256"
    assert hops[2].header.via == hops[3].header.via == "Frontend Transport"
    assert hops[2].header.by_ip == "10.233.238.130"
    assert hops[6].header.by_ip == "2002:a05:6a10:8c0e:b0:4a1:5e2d:3b4f"
    assert hops[1].header.id == "15.2.1118.7"
    assert hops[5].header.recipient == "j.wesselius.test@gmail.com"


def test_figure_6_delays_from_the_date_header_and_total() -> None:
    analysis = analyze(FIGURE_6)
    assert [h.delay for h in analysis.hops] == [1.0, 1.0, 2.0, 0.0, 2.0, 2.0, 1.0]
    assert analysis.total_delay == 9.0
    assert analysis.hops[5].header.timestamp == dt.datetime(2021, 10, 4, 8, 1, 8, tzinfo=dt.UTC)


def test_figure_6_internal_hops_are_not_flagged_and_nothing_is_warned() -> None:
    analysis = analyze(FIGURE_6)
    assert [h.flags for h in analysis.hops] == [()] * 7  # MAPI and Google's hand-off are internal
    assert analysis.warnings == ()


def test_figure_6_message_fields_and_the_body_is_not_read() -> None:
    analysis = analyze(FIGURE_6)
    assert analysis.subject == "Test via the EOP smarthost"  # RFC 2047 decoded
    assert analysis.sender == "Jaap Wesselius <jaap@contoso.com>"
    assert analysis.to == '"j.wesselius.test@gmail.com" <j.wesselius.test@gmail.com>'
    assert analysis.message_id == "<8f1c2e3d4b5a4c6d9e0f1a2b3c4d5e6f@EXCH01.contoso.com>"
    assert analysis.sent == dt.datetime(2021, 10, 4, 8, 1, tzinfo=dt.UTC)
    assert len(analysis.hops) == 7  # neither X-Received nor the "Received:" in the body


def test_to_json_uses_exchange_style_keys() -> None:
    data = analyze(FIGURE_6).to_json()
    assert data["TotalDelay"] == 9.0
    assert data["Subject"] == "Test via the EOP smarthost"
    assert data["MessageId"] == "<8f1c2e3d4b5a4c6d9e0f1a2b3c4d5e6f@EXCH01.contoso.com>"
    assert data["Date"] == "2021-10-04T08:01:00+00:00"
    assert data["Warnings"] == []
    assert data["Hops"][1] == {
        "Hop": 2, "From": "EXCH01.contoso.com", "FromIp": "10.0.0.5", "By": "EXCH02.contoso.com",
        "ByIp": "10.0.0.6", "With": "Microsoft SMTP Server", "Via": None, "Tls": True,
        "TlsDetail": "TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "Id": "15.2.1118.7",
        "For": None, "Time": "2021-10-04T10:01:02+02:00", "Delay": 1.0, "Flags": [],
    }
    assert data["Hops"][6]["By"] == "2002:a05:6a10:8c0e:b0:4a1:5e2d:3b4f"  # the IP when no name


def test_outlook_internet_headers_box_crlf_without_date() -> None:
    analysis = analyze(EXCHANGE_EOP.encode("ascii"))
    assert [h.header.by_host for h in analysis.hops] == [
        "EXCH02.contoso.com", "AM6PR0502MB3911.eurprd05.prod.outlook.com"]
    assert [h.delay for h in analysis.hops] == [None, 4.0]
    assert analysis.total_delay == 4.0
    assert analysis.subject is None and analysis.sent is None


# --- Postfix, clock skew, a hop without TLS -------------------------------------------------


def test_postfix_chain_hops_and_tls() -> None:
    hops = analyze(POSTFIX_SKEW).hops
    assert hosts(POSTFIX_SKEW) == [
        (None, None, "app01.internal.example.org"),
        ("app01.internal.example.org", "10.20.0.15", "relay.example.org"),
        ("relay.example.org", "198.51.100.25", "mx.fabrikam.com"),
        ("mx.fabrikam.com", "127.0.0.1", "localhost"),
        ("mx.fabrikam.com", "127.0.0.1", "mx.fabrikam.com"),
    ]
    assert [h.header.tls for h in hops] == [False, False, True, False, False]
    assert hops[2].header.tls_detail == "TLSv1.3 TLS_AES_256_GCM_SHA384"
    assert hops[2].header.id == "4HNl2y3TvKz1xq2"
    assert hops[2].header.recipient == "bob@fabrikam.com"


def test_clock_skew_is_flagged_and_delays_stay_signed() -> None:
    analysis = analyze(POSTFIX_SKEW)
    assert [h.delay for h in analysis.hops] == [0.0, 1.0, -138.0, 2.0, 1.0]
    assert analysis.total_delay == -134.0
    assert analysis.hops[2].flags == (CLOCK_SKEW,)
    assert "Hop 3: stamped 138 s before hop 2; the clocks of these servers disagree" in analysis.warnings


def test_hop_without_tls_is_flagged_but_local_and_loopback_hops_are_not() -> None:
    analysis = analyze(POSTFIX_SKEW)
    assert [h.flags for h in analysis.hops] == [(), (NO_TLS,), (CLOCK_SKEW,), (), ()]
    assert "Hop 2: no TLS from app01.internal.example.org [10.20.0.15] to relay.example.org" \
        in analysis.warnings
    assert len(analysis.warnings) == 2


def test_small_negative_delay_is_within_tolerance() -> None:
    text = (
        "Received: from b.example (b.example [198.51.100.2]) by c.example with ESMTPS id 2;"
        " Tue, 5 Oct 2021 10:00:02 +0000\n"
        "Received: from a.example (a.example [198.51.100.1]) by b.example with ESMTPS id 1;"
        " Tue, 5 Oct 2021 10:00:05 +0000\n"
    )
    analysis = analyze(text)
    assert analysis.hops[1].delay == -analyzer.SKEW_TOLERANCE + 2
    assert analysis.hops[1].flags == ()


def test_skew_against_the_date_header_is_flagged_on_the_first_hop() -> None:
    text = ("Date: Tue, 5 Oct 2021 10:10:00 +0000\n"
            "Received: from a.example (a.example [198.51.100.1]) by b.example with ESMTPS id 1;"
            " Tue, 5 Oct 2021 10:00:00 +0000\n")
    analysis = analyze(text)
    assert analysis.hops[0].delay == -600.0
    assert analysis.hops[0].flags == (CLOCK_SKEW,)
    assert "Hop 1: stamped 600 s before the Date: header" in analysis.warnings[0]


# --- Exim, Gmail, mailhop -------------------------------------------------------------------


def test_exim_helo_ip_tls_and_lowercase_protocols() -> None:
    analysis = analyze(EXIM)
    first, second = analysis.hops
    assert (first.header.from_host, first.header.from_ip) == ("laptop", "192.0.2.44")
    assert first.header.protocol == "ESMTPSA"
    assert first.header.tls_detail == "TLSv1.3 TLS_AES_256_GCM_SHA384"
    assert first.header.id == "1mXYZa-0001ab-Cd"
    assert first.header.recipient == "carol@example.com"
    assert (second.header.from_host, second.header.from_ip) == ("mail.example.net", "198.51.100.7")
    assert second.header.protocol == "ESMTPS"
    assert second.header.tls_detail == "TLSv1.2 ECDHE_RSA_AES_256_GCM_SHA384"
    assert [h.delay for h in analysis.hops] == [None, 2.0]
    assert analysis.total_delay == 2.0
    assert analysis.warnings == ()


def test_gmail_smtps_google_transport_security() -> None:
    analysis = analyze(GMAIL)
    first, second = analysis.hops
    assert (first.header.from_host, first.header.from_ip, first.header.by_host) == (
        "mail-sor-f41.google.com", "209.85.220.41", "mx.google.com")
    assert first.header.protocol == "SMTPS"
    assert (first.header.tls, first.header.tls_detail) == (True, "Google Transport Security")
    assert first.header.id == "x12sor123.2021.10.05.01.02.03"
    assert first.header.recipient == "dave@gmail.com"
    assert first.header.timestamp == dt.datetime(2021, 10, 5, 8, 2, 3, tzinfo=dt.UTC)
    assert [h.delay for h in analysis.hops] == [2.0, 1.0]
    assert analysis.total_delay == 3.0
    assert [h.flags for h in analysis.hops] == [(), ()]
    assert second.header.by_ip == "2002:a17:906:3a4c::"  # written out in full, kept in short form
    assert (second.header.from_host, second.header.protocol) == (None, "SMTP")


def test_mailhop_own_stamp_then_gmail() -> None:
    session = Session(peer_ip="10.20.0.15", peer_port=40000, local_ip="10.20.0.2", local_port=587,
                      helo="app01.contoso.com", esmtp=True, auth_user="app01",
                      tls=TlsInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 128))
    ours = stamp.received(session, "relay.contoso.com", 1017, ["x@gmail.com"], 1_700_000_000.0)
    gmail = (
        b"Received: from relay.contoso.com (relay.contoso.com. [203.0.113.25])\r\n"
        b"        by mx.google.com with ESMTPS id q7si9876543qkd.512.2023.11.14.14.13.23\r\n"
        b"        for <x@gmail.com>\r\n"
        b"        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\r\n"
        b"        Tue, 14 Nov 2023 14:13:23 -0800 (PST)\r\n"
    )
    analysis = analyze(gmail + ours + b"Subject: invoice\r\n\r\nbody\r\n")
    first, second = analysis.hops
    assert (first.header.from_host, first.header.from_ip, first.header.by_host) == (
        "app01.contoso.com", "10.20.0.15", "relay.contoso.com")
    assert first.header.protocol == "ESMTPSA"
    assert first.header.tls_detail == "TLSv1.3 TLS_AES_128_GCM_SHA256"
    assert (first.header.id, first.header.recipient) == ("1017", "x@gmail.com")
    assert first.header.timestamp == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert second.header.tls_detail == "TLSv1.3 TLS_AES_256_GCM_SHA384"
    assert second.delay == 3.0
    assert analysis.warnings == ()


def test_mailhop_stamp_for_several_recipients_has_no_for() -> None:
    session = Session(peer_ip="192.0.2.10", peer_port=1, local_ip="192.0.2.1", local_port=25,
                      helo="client.contoso.com", esmtp=True)
    line = stamp.received(session, "mx.contoso.com", 7, ["a@x", "b@y"], 0.0)
    analysis = analyze(line)
    (hop,) = analysis.hops
    assert (hop.header.id, hop.header.recipient, hop.header.protocol) == ("7", None, "ESMTP")
    assert hop.flags == (NO_TLS,)


# --- received.parse details -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "internal"),
    [
        ("from EXCH01.contoso.com (10.0.0.5) by EXCH02.contoso.com (10.0.0.6) with Microsoft SMTP"
         " Server id 15.2.1118.7; Mon, 4 Oct 2021 10:01:02 +0200", True),
        ("from EXCH02.contoso.com (20.61.12.34) by DB8EUR05FT010.mail.protection.outlook.com"
         " (10.233.238.130) with Microsoft SMTP Server id 15.20.4566.14 via Frontend Transport;"
         " Mon, 4 Oct 2021 08:01:04 +0000", False),
        ("from localhost (localhost [127.0.0.1]) by mx.example.org (Postfix) with ESMTP id 1;"
         " Tue, 5 Oct 2021 10:00:00 +0000", True),
        ("from app01 (app01 [10.20.0.15]) by relay (Postfix) with ESMTP id 1;"
         " Tue, 5 Oct 2021 10:00:00 +0000", False),
        ("by mx.example.org (Postfix, from userid 1000) id 1; Tue, 5 Oct 2021 10:00:00 +0000", True),
        ("from mail.example.net by mail.example.net with local (Exim 4.94.2) id 1;"
         " Tue, 5 Oct 2021 10:00:00 +0000", True),
        ("from [192.0.2.1] (helo=client) by mx.example.com with esmtp (Exim 4.94.2) id 1;"
         " Tue, 5 Oct 2021 10:00:00 +0000", False),
    ],
)
def test_is_internal(value: str, internal: bool) -> None:
    assert analyzer.is_internal(received.parse(value)) is internal


@pytest.mark.parametrize(
    ("date", "expected", "note"),
    [
        ("Tue, 05 Oct 2021 01:02:03 -0700 (PDT)", dt.datetime(2021, 10, 5, 8, 2, 3, tzinfo=dt.UTC), None),
        ("Tue, 5 Oct 2021 10:01 +0200", dt.datetime(2021, 10, 5, 8, 1, tzinfo=dt.UTC), None),
        ("5 Oct 2021 10:01:02 -0000", dt.datetime(2021, 10, 5, 10, 1, 2, tzinfo=dt.UTC), None),
        ("Tue, 5 Oct 2021 10:01:02 +0200 (W. Europe Daylight Time)",
         dt.datetime(2021, 10, 5, 8, 1, 2, tzinfo=dt.UTC), None),
        ("Tue, 5 Oct 2021 10:01:02", dt.datetime(2021, 10, 5, 10, 1, 2, tzinfo=dt.UTC),
         "no time zone in 'Tue, 5 Oct 2021 10:01:02'; read as UTC"),
        ("yesterday", None, "unreadable date 'yesterday'"),
    ],
)
def test_parse_date(date: str, expected: dt.datetime | None, note: str | None) -> None:
    when, got_note = received.parse_date(date)
    assert when == expected
    assert got_note == note
    assert when is None or when.tzinfo is not None


def test_exchange_ipv6_and_via_frontend_transport() -> None:
    r = received.parse(
        "from DB8EUR05FT010.eop-eur05.prod.protection.outlook.com (2603:10a6:208:1:cafe::4a) by"
        " AM0PR01CA0123.outlook.office365.com (2603:10a6:208:1::12) with Microsoft SMTP Server"
        " (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.4566.22 via"
        " Frontend Transport; Mon, 4 Oct 2021 08:01:04 +0000")
    assert (r.from_ip, r.by_ip, r.via, r.id) == (
        "2603:10a6:208:1:cafe::4a", "2603:10a6:208:1::12", "Frontend Transport", "15.20.4566.22")
    assert r.notes == ()


def test_sendmail_version_comment_after_id() -> None:
    r = received.parse(
        "from client.example.com (client.example.com [198.51.100.9]) by mx.example.com"
        " (8.15.2/8.15.2) with ESMTPS id 195A1b2C003456 (version=TLSv1.3"
        " cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT) for <x@example.com>;"
        " Tue, 5 Oct 2021 10:01:02 +0200")
    assert (r.tls, r.tls_detail, r.id, r.recipient) == (
        True, "TLSv1.3 TLS_AES_256_GCM_SHA384", "195A1b2C003456", "x@example.com")


# --- odd input ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \r\n\n\t", b"", b"\r\n"])
def test_empty_input_raises_validation_error(text: str | bytes) -> None:
    with pytest.raises(ValidationError, match="empty"):
        analyze(text)


def test_no_received_headers_gives_no_hops_and_a_warning() -> None:
    analysis = analyze("From: a@example.com\nSubject: local only\n")
    assert analysis.hops == ()
    assert analysis.total_delay is None
    assert analysis.subject == "local only"
    assert analysis.warnings == ("no Received: headers: the message's path cannot be traced",)


def test_text_that_is_not_headers_at_all() -> None:
    analysis = analyze("just some words someone pasted\n")
    assert analysis.hops == ()
    assert analysis.warnings == (
        "no Received: headers: the message's path cannot be traced (no header fields were found)",)


def test_unparsable_received_becomes_a_hop_with_flags_and_warnings() -> None:
    text = (
        "Received: from b.example (b.example [198.51.100.2]) by c.example with ESMTPS id 2;"
        " Tue, 5 Oct 2021 10:00:09 +0000\n"
        "Received: complete garbage here\n"
        "Received: from a.example (a.example [198.51.100.1]) by b.example with ESMTPS id 1;"
        " Tue, 5 Oct 2021 10:00:05 +0000\n"
    )
    analysis = analyze(text)
    assert [h.flags for h in analysis.hops] == [(), (UNPARSED, NO_TIME), ()]
    # The hop without a time is skipped over: hop 3 counts from hop 1.
    assert [h.delay for h in analysis.hops] == [None, None, 4.0]
    assert analysis.total_delay == 4.0
    assert analysis.warnings == (
        "Hop 2: text before the first clause ignored: 'complete garbage here'",
        "Hop 2: no date",
        "Hop 2: neither a 'from' nor a 'by' clause",
    )


def test_missing_semicolon_unbalanced_parenthesis_and_missing_zone() -> None:
    analysis = analyze("Received: from a.example (a.example [198.51.100.1] by b.example with ESMTP"
                       " Tue, 5 Oct 2021 10:00\n")
    (hop,) = analysis.hops
    assert (hop.header.from_host, hop.header.from_ip) == ("a.example", "198.51.100.1")
    assert hop.header.timestamp == dt.datetime(2021, 10, 5, 10, 0, tzinfo=dt.UTC)
    assert analysis.warnings[:3] == (
        "Hop 1: unbalanced parentheses; the rest was read as a comment",
        "Hop 1: no ';' before the date",
        "Hop 1: no time zone in 'Tue, 5 Oct 2021 10:00'; read as UTC",
    )


def test_unreadable_date_header_is_a_warning() -> None:
    analysis = analyze("Date: sometime\n" + EXCHANGE_EOP)
    assert analysis.sent is None
    assert analysis.warnings == ("Date: unreadable date 'sometime'",)
    assert analysis.to_json()["Date"] == "sometime"


def test_indented_paste_with_leading_blank_lines_and_lost_indentation() -> None:
    pasted = "\n\n    " + EXIM.replace("\n", "\n    ").replace("\t", "")
    assert [h.header.id for h in analyze(pasted).hops] == ["1mXYZa-0001ab-Cd", "1mXYZb-0007Qx-Ef"]
    assert analyze(pasted).to_json() == analyze(EXIM).to_json()


def test_mbox_from_line_cr_line_ends_and_undecodable_bytes() -> None:
    raw = ("From alice@example.net Tue Oct  5 10:20:33 2021\r" + EXIM.replace("\n", "\r")).encode()
    raw = raw.replace(b"Subject: lunch?", b"Subject: caf\xe9")
    analysis = analyze(raw)
    assert len(analysis.hops) == 2
    assert analysis.subject == "caf\ufffd"


def test_read_fields_unfolds_like_block_fields_for_stored_messages() -> None:
    data = POSTFIX_SKEW.replace("\n", "\r\n").encode()
    assert analyzer.read_fields(POSTFIX_SKEW) == block.fields(block.split(data)[0])
