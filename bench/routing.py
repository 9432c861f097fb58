"""Routing cost: route decisions per second with many send connectors.

Builds N connectors (default 10,000) with ``mailhop.model.connector.new_connector``,
in fixed proportions: 50% with one to three exact domains (``d123.example``), 30% with a
wildcard (``*.w123.example``), 10% sender-scoped (``SenderDomains``; half of them for
every recipient domain, ``*``, the way sender-based routing for many tenants looks,
half for one exact domain), a few ``*`` catch-alls with different costs, and the rest
with several address spaces of mixed kinds.  Then ``mailhop.routing.router.Router``
routes pre-generated (recipient, sender, size) tuples of four kinds:

- exact:    the recipient's domain is an exact address space of some connector;
- wildcard: a sub-domain of a wildcard address space;
- fallback: no specific address space matches, a ``*`` connector wins;
- sender:   the sender belongs to a sender-scoped connector's domain.

It reports the time to build the connectors and the router, and decisions per
second for each kind and for an even mix, and the same for smaller connector counts
(10, 100, 1,000) to show how the cost grows.  ``route`` is the call the server makes
for every recipient it receives (it also builds the route's explanation).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import REPO, fmt, machine, machine_line, markdown_table, text_table, update_report

from mailhop.model.connector import SendConnector, new_connector
from mailhop.routing.router import Router

SERVER = "BENCH01"
KINDS = ("exact", "wildcard", "fallback", "sender")


def make_connectors(n: int, rng: random.Random, sender_star: bool = True) -> tuple[list[SendConnector], dict[str, int]]:
    """N connectors in the proportions of the module docstring; returns them and the counts.

    Without ``sender_star`` every sender-scoped connector has one exact domain instead of
    half of them having ``*``.
    """
    n_star = max(1, min(10, n // 100))
    n_exact = n * 50 // 100
    n_wild = n * 30 // 100
    n_sender = n * 10 // 100
    n_multi = n - n_star - n_exact - n_wild - n_sender
    connectors: list[SendConnector] = []
    smart = {"DNSRoutingEnabled": False, "SmartHosts": "[192.0.2.1]"}

    def add(name: str, spaces: str, **extra: object) -> None:
        values: dict[str, object] = {"Name": name, "AddressSpaces": spaces}
        values.update(extra)
        connectors.append(new_connector(values, SERVER))

    for i in range(n_star):
        add(f"Star {i}", f"*;{i + 1}", **(smart if i % 2 else {}))
    for i in range(n_exact):
        k = rng.randint(1, 3)
        add(f"Exact {i}", ",".join(f"d{i}x{j}.example;{rng.randint(1, 10)}" for j in range(k)), **smart)
    for i in range(n_wild):
        add(f"Wild {i}", f"*.w{i}.example;{rng.randint(1, 10)}", **smart)
    for i in range(n_sender):
        scope = f"s{i}.sender.test" if i % 4 else f"app@s{i}.sender.test"
        space = "*" if i % 2 == 0 and sender_star else f"d{rng.randrange(max(1, n_exact))}x0.example"
        add(f"Sender {i}", space, SenderDomains=scope, **smart)
    for i in range(n_multi):
        add(f"Multi {i}", f"m{i}.example,*.mw{i}.example,smtp:m{i}.example.net;5", **smart)
    n_sender_star = (n_sender + 1) // 2 if sender_star else 0
    counts = {"`*`": n_star, "exact": n_exact, "wildcard": n_wild, "sender-scoped": n_sender,
              "of which with `*`": n_sender_star, "multi": n_multi}
    return connectors, counts


def workload(kind: str, n_connectors: int, count: int, rng: random.Random) -> list[tuple[str, str, int]]:
    n_exact = max(1, n_connectors * 50 // 100)
    n_wild = max(1, n_connectors * 30 // 100)
    n_sender = max(1, n_connectors * 10 // 100)
    out = []
    for _ in range(count):
        size = rng.choice((2_000, 40_000, 1_000_000))
        if kind == "exact":
            rcpt, sender = f"u{rng.randrange(1000)}@d{rng.randrange(n_exact)}x0.example", "app@corp.test"
        elif kind == "wildcard":
            rcpt, sender = f"u@h{rng.randrange(50)}.sub.w{rng.randrange(n_wild)}.example", "app@corp.test"
        elif kind == "fallback":
            rcpt, sender = f"u@nowhere{rng.randrange(100_000)}.org", "app@corp.test"
        else:
            i = rng.randrange(n_sender)
            sender = f"app@s{i}.sender.test"
            rcpt = f"u@nowhere{rng.randrange(100_000)}.org" if i % 2 == 0 else f"u@d{rng.randrange(n_exact)}x0.example"
        out.append((rcpt, sender, size))
    return out


def rate(router: Router, items: Sequence[tuple[str, str, int]], repeat: int, budget: float) -> float:
    """Best decisions per second over ``repeat`` passes (the least disturbed one).

    A pass stops early after ``budget`` seconds, so slow configurations stay bounded in time.
    """
    best = 0.0
    for _ in range(repeat):
        done = 0
        start = time.perf_counter()
        for i in range(0, len(items), 250):
            for rcpt, sender, size in items[i:i + 250]:
                router.route(rcpt, sender, size)
            done += len(items[i:i + 250])
            if time.perf_counter() - start > budget:
                break
        best = max(best, done / (time.perf_counter() - start))
    return best


def check(router: Router) -> None:
    """A few decisions whose answer is known, so the benchmark measures correct routing."""
    if len(router.connectors) < 1000:
        return
    assert router.route("a@d7x0.example", "app@corp.test").connector.name == "Exact 7"  # type: ignore[union-attr]
    assert router.route("a@x.sub.w5.example", "app@corp.test").connector.name == "Wild 5"  # type: ignore[union-attr]
    assert router.route("a@nowhere.org", "app@corp.test").connector.name == "Star 0"  # type: ignore[union-attr]
    assert router.route("a@d7x0.example", "x@s1.sender.test").connector.name == "Exact 7"  # type: ignore[union-attr]


def measure(n: int, per_kind: int, repeat: int, seed: int, budget: float, sender_star: bool = True) -> dict[str, object]:
    rng = random.Random(seed)
    start = time.perf_counter()
    connectors, counts = make_connectors(n, rng, sender_star)
    made = time.perf_counter() - start
    start = time.perf_counter()
    router = Router(connectors, SERVER)
    built = time.perf_counter() - start
    if sender_star:
        check(router)
    rates = {}
    mix: list[tuple[str, str, int]] = []
    for kind in KINDS:
        items = workload(kind, n, per_kind, rng)
        mix += items[: per_kind // len(KINDS)]
        rates[kind] = rate(router, items, repeat, budget)
    rng.shuffle(mix)
    rates["mix"] = rate(router, mix, repeat, budget)
    label = f"{n:,}" if sender_star else f"{n:,}, no sender-scoped `*`"
    return {"connectors": n, "label": label, "counts": counts, "create_s": made, "build_s": built, "rates": rates}


def report(results: list[dict[str, object]], info: dict[str, str], argv: Sequence[str],
           per_kind: int, repeat: int, budget: float) -> tuple[str, str]:
    header = ("connectors", "create s", "Router() s", *(f"{k} /s" for k in KINDS), "mix /s")
    rows = []
    for r in results:
        rates = r["rates"]
        assert isinstance(rates, dict)
        rows.append([str(r["label"]), fmt(r["create_s"], 2), fmt(r["build_s"], 3),  # type: ignore[arg-type]
                     *(fmt(rates[k]) for k in (*KINDS, "mix"))])
    largest = max((r for r in results if "no sender" not in str(r["label"])), key=lambda r: r["connectors"])  # type: ignore[arg-type,return-value]
    counts = largest["counts"]
    assert isinstance(counts, dict)
    mix_text = ", ".join(f"{v:,} {k}" for k, v in counts.items())
    cmd = "python bench/routing.py " + " ".join(argv) if argv else "python bench/routing.py"
    md = "\n".join([
        "### Routing: decisions per second",
        "",
        f"Machine: {machine_line(info)}.",
        "",
        f"Run: `{cmd}`: up to {per_kind:,} decisions per kind, best of {repeat} passes of at most "
        f"{budget:g} s, one core (`Router.route(recipient, sender, size)`, as the server calls it for "
        "every recipient).",
        f"Connectors at {largest['connectors']:,}: {mix_text} (see `bench/routing.py`). The row "
        "*no sender-scoped `*`* has the same connectors except that every sender-scoped one has an exact "
        "domain.",
        "",
        markdown_table(header, rows, right=range(1, len(header))),
        "",
        "*exact*: the domain is an exact address space; *wildcard*: a sub-domain of `*.wN.example`; "
        "*fallback*: nothing specific matches, a `*` connector wins; *sender*: the sender's domain "
        "scopes a connector; *mix*: the four kinds evenly. *create s*: building the connectors with "
        "`new_connector` (parsing and validation); *Router() s*: indexing them.",
    ])
    return text_table(header, rows), md


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/routing.py", description="Route decisions per second with many connectors.")
    p.add_argument("--connectors", type=int, default=10_000, help="connectors of the main measurement (default 10000)")
    p.add_argument("--scale", default="10,100,1000", help="smaller connector counts to compare (default 10,100,1000)")
    p.add_argument("--decisions", type=int, default=20_000, help="decisions per kind (default 20000)")
    p.add_argument("--repeat", type=int, default=3, help="passes per measurement; the best counts (default 3)")
    p.add_argument("--budget", type=float, default=2.0, help="longest pass in seconds (default 2)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md", help="report to update; '-' for none")
    args = p.parse_args(argv)
    counts = sorted({int(x) for x in args.scale.split(",") if x} | {args.connectors})
    info = machine()
    print(f"machine: {machine_line(info)}")
    results = []
    plan = [(n, True) for n in counts] + [(args.connectors, False)]
    for n, sender_star in plan:
        r = measure(n, args.decisions, args.repeat, args.seed, args.budget, sender_star)
        results.append(r)
        rates = r["rates"]
        assert isinstance(rates, dict)
        print(f"{r['label']} connectors: " + ", ".join(f"{k} {fmt(v)}/s" for k, v in rates.items()), flush=True)
    text, md = report(results, info, argv, args.decisions, args.repeat, args.budget)
    print()
    print(text)
    if str(args.out) != "-":
        update_report(args.out, "routing", md)
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
