"""The relations feature functions read, each built once per run from the validated history.

Every relation carries ``account_id`` and ``as_of`` and holds only what was knowable before
``as_of``: rows are joined to the snapshot grid on ``date < as_of``, and values that become known
later (an end date, a resolution, a CSAT rating) are masked unless they happened before
``as_of``. Days are integers (days since 1970-01-01) so window arithmetic is plain subtraction,
the same on DuckDB, Spark or Postgres.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
from ibis import _

from churnlens.features.registry import Vocabulary

USAGE_LOOKBACK_DAYS = 365
TICKET_LOOKBACK_DAYS = 180
SURVEY_LOOKBACK_DAYS = 365
COMMERCIAL_LOOKBACK_DAYS = 365
ONBOARDING_DAYS = 30
LOOKBACK_DAYS = {"usage": USAGE_LOOKBACK_DAYS, "user_activity": USAGE_LOOKBACK_DAYS,
                 "feature_usage": USAGE_LOOKBACK_DAYS, "tickets": TICKET_LOOKBACK_DAYS,
                 "surveys": SURVEY_LOOKBACK_DAYS, "subscriptions": COMMERCIAL_LOOKBACK_DAYS}
"""How far back each source relation holds rows: a feature cannot see further, and a test
refuses one that declares a longer window (a ``tickets_365d`` would read 180 days)."""


def _day(value: ir.Value) -> ir.IntegerValue:
    """Days since the Unix epoch of a date or timestamp."""
    if value.type().is_timestamp():
        value = value.date()  # type: ignore[attr-defined]
    return value.epoch_days()  # type: ignore[attr-defined]


def attach(left: ir.Table, right: ir.Table, keys: str | list[str], how: str = "left"
           ) -> ir.Table:
    """Join on same-named keys and keep one copy of each key column."""
    joined = left.join(right, keys, how=how)  # type: ignore[arg-type]
    duplicates = [c for c in joined.columns if c.endswith("_right")]
    return joined.drop(*duplicates) if duplicates else joined


def _flag(condition: ir.BooleanValue) -> ir.IntegerValue:
    return condition.ifelse(1, 0)


def whole_sum(value: ir.IntegerValue) -> ir.IntegerValue:
    """The sum of an integer column, as a 64-bit integer.

    DuckDB sums BIGINT into HUGEINT, and whatever is computed from a HUGEINT after that (the
    products and sums of the snapshot windows) carries twice the width: in the 100M-event
    build the per-(account, snapshot) sums over the year's bucket rows were its costliest
    step. Ibis drops a cast to the type it already believes a sum has, so the sum goes back
    to BIGINT through DOUBLE, exact below 2**53.
    """
    return value.sum().cast("float64").cast("int64")  # type: ignore[no-any-return]


def _sum_as(value: ir.NumericValue, dtype: str) -> ir.NumericValue:
    """``value`` summed, as ``dtype`` (an integer as BIGINT, see ``whole_sum``)."""
    if dtype.startswith("int"):
        return whole_sum(value)  # type: ignore[arg-type]
    return value.sum().cast(dtype)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Grid:
    """The snapshot dates as a relation: ``as_of`` (date) and ``as_of_day`` (int)."""

    table: ir.Table
    as_of_days: tuple[int, ...]

    @staticmethod
    def of(dates: list, backend: ibis.BaseBackend) -> Grid:  # type: ignore[type-arg]
        from datetime import date

        days = tuple((d - date(1970, 1, 1)).days for d in dates)
        memtable = ibis.memtable({"as_of": dates, "as_of_day": list(days)},
                                 schema={"as_of": "date", "as_of_day": "int64"})
        return Grid(memtable, days)

    def buckets(self, windows: dict[str, tuple[int, int]],
                tails: dict[str, int] | None = None,
                account_only: frozenset[str] = frozenset()) -> Buckets:
        return bucket_windows(list(self.as_of_days), windows, tails, account_only)


USAGE_WINDOWS = {"w7": (0, 7), "w30": (0, 30), "prev30": (30, 60), "w90": (0, 90),
                 "prev90": (90, 180), "w180": (0, 180), "w365": (0, 365)}
"""Windows the usage features read, as (from, to) days before as_of: [as_of - to, as_of - from)."""
ACCOUNT_ONLY_WINDOWS = frozenset({"w180", "w365"})
"""Windows read only by per-account sums (events, active days, spend), never by distinct users:
the per-user rows of the buckets only they hold join no snapshot (``newest_first``), so the
long look-back costs the per-account rows, not the per-user ones."""


def window_key(days: int, previous: bool = False) -> str:
    """The membership column of the window of the last ``days`` days (or of the ``days``
    before those): a feature's window is this value, never a literal in its code."""
    key = f"prev{days}" if previous else f"w{days}"
    if key not in USAGE_WINDOWS:
        raise KeyError(f"no usage window of {days} days{' before the last' if previous else ''}"
                       f"; the engine cuts {sorted(USAGE_WINDOWS)}")
    return key
TAIL_WINDOWS = {"w7": 7}
"""Windows ending at as_of that need no cut of their own: when no other cut falls inside one,
it is the last ``days`` days of the bucket that ends at as_of, and a user is in it when
active there (``recent``). A cut at every ``as_of - 7`` splits most months in two, and
costs about 40% more (account, user, bucket) rows."""
MAX_BUCKET_DAYS = 63


@ibis.udf.agg.builtin(signature=((dt.int64,), dt.int64))
def bit_or(mask):  # type: ignore[no-untyped-def]
    """Bitwise OR of a column (DuckDB, Spark SQL and PostgreSQL all call it bit_or)."""


@ibis.udf.scalar.builtin(name="xxhash64", signature=((dt.string,), dt.int64))
def _spark_xxhash64(value):  # type: ignore[no-untyped-def]
    """Spark's 64-bit hash of a value."""


def id_key(ids: ir.StringValue) -> ir.IntegerValue:
    """A 64-bit integer standing for each string id: grouping on it is far cheaper.

    DuckDB's and PostgreSQL's ``hash`` are 64 bits wide; Spark's is 32, which merges two of a
    hundred thousand ids about as often as not, so on Spark the key is its 64-bit xxhash64.
    """
    if ibis.get_backend(ids).name == "pyspark":
        return _spark_xxhash64(ids)
    return ids.hash()


@ibis.udf.scalar.builtin(name="bit_count", signature=((dt.int64,), dt.int8))
def _native_bit_count(value):  # type: ignore[no-untyped-def]
    """Set bits of an integer (DuckDB and Spark SQL; DuckDB answers a TINYINT, cast it before
    adding)."""


def bit_count(mask: ir.IntegerValue) -> ir.IntegerValue:
    """Set bits of a non-negative 64-bit ``mask``.

    DuckDB and Spark have a ``bit_count`` for integers; PostgreSQL has one only for bit
    strings, so there it is plain arithmetic: shifts, ands and adds (the classic SWAR
    popcount). That spelling names the mask 64 times once nested, and on the other engines
    it made the snapshot SQL three times as long and its compiling half a second slower.
    Masks hold at most 63 bits, so every step stays non-negative and no engine's shift
    semantics differ.
    """
    if ibis.get_backend(mask).name in ("duckdb", "pyspark"):
        return _native_bit_count(mask).cast("int64")
    x = mask - ((mask >> 1) & 0x5555555555555555)
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return (x & 0x7F).cast("int64")


@dataclass(frozen=True)
class Buckets:
    """Days cut at every window edge of every snapshot, so each window is a run of buckets.

    Activity is summed once per (account, user, bucket). A snapshot's window then reads a
    handful of bucket rows instead of every day in it, and a user counts once in a window at
    the first of their active buckets inside it (the one whose previous active bucket lies
    before the window's first bucket), so distinct users become plain sums per account.
    ``calendar`` maps a day to its bucket and its ``offset`` (days from the bucket's first);
    ``membership`` has, for each snapshot and bucket in its look-back, ``<window>`` (1 when the
    bucket lies in that window) and ``<window>_first`` (the index of the window's first
    bucket). A tail window (``TAIL_WINDOWS``) that no cut falls inside is instead
    ``<window>_tail`` (1 on the bucket ending at as_of, whose last days it is).
    ``newest_first`` is the latest first bucket of the windows holding the bucket: a user
    whose previous active bucket is that or later is counted in none of them here.
    """

    calendar: ir.Table
    membership: ir.Table
    ends: ir.Table
    """``bucket``; ``bucket_end``, its first day after (bucket -1 ends at the first cut); and
    ``tail_bit``, the lowest bit of a day mask (bit ``offset``) that falls in the bucket's tail
    days: a mask at least that large has a day there (null for bucket -1, which has none)."""


def _cuts(edges: set[int]) -> list[int]:
    ordered = sorted(edges)
    cuts = [ordered[0]]
    for edge in ordered[1:]:
        # a bucket's active days are bits of one 64-bit mask, so no bucket may be longer
        cuts.extend(range(cuts[-1] + MAX_BUCKET_DAYS, edge, MAX_BUCKET_DAYS))
        cuts.append(edge)
    return cuts


def bucket_windows(as_of_days: list[int], windows: dict[str, tuple[int, int]],
                   tails: dict[str, int] | None = None,
                   account_only: frozenset[str] = frozenset()) -> Buckets:
    import bisect

    tails = tails or {}
    tail_days = set(tails.values())
    assert len(tail_days) <= 1, "one tail length: the calendar marks one tail per bucket"
    edges = {day - edge for day in as_of_days for name, pair in windows.items()
             for edge in pair if name not in tails or edge == 0}
    cuts = _cuts(edges)
    # a tail window that some cut falls inside is cut at its start after all (and that cut may
    # fall inside another snapshot's tail window): until no cut falls inside one
    while True:
        split = {day - length for day in as_of_days for length in tail_days
                 if bisect.bisect_right(cuts, day - length) < bisect.bisect_left(cuts, day)}
        if split <= edges:
            break
        edges |= split
        cuts = _cuts(edges)
    cut_set = set(cuts)
    tail = next(iter(tail_days), 0)
    calendar = {"day": [], "bucket": [], "offset": []}  # type: dict[str, list[int]]
    for day in range(cuts[0], cuts[-1]):
        index = bisect.bisect_right(cuts, day) - 1
        calendar["day"].append(day)
        calendar["bucket"].append(index)
        calendar["offset"].append(day - cuts[index])
    lookback = max(hi for _, hi in windows.values())
    rows: dict[str, list[int]] = {"bucket": [], "as_of_day": [], "newest_first": []}
    for name in windows:
        rows[name], rows[f"{name}_first"] = [], []
    for name in tails:
        rows[f"{name}_tail"] = []
    for as_of_day in as_of_days:
        for index in range(len(cuts) - 1):
            low, high = cuts[index], cuts[index + 1]
            if low < as_of_day - lookback or high > as_of_day:
                continue
            rows["bucket"].append(index)
            rows["as_of_day"].append(as_of_day)
            newest = NO_PREVIOUS
            for name, (start, end) in windows.items():
                whole = name not in tails or as_of_day - end in cut_set
                inside = whole and low >= as_of_day - end and high <= as_of_day - start
                first = bisect.bisect_left(cuts, as_of_day - end)
                rows[name].append(int(inside))
                rows[f"{name}_first"].append(first)
                counts_users = inside and name not in account_only
                newest = max(newest, first) if counts_users else newest
                if name in tails:
                    rows[f"{name}_tail"].append(int(not whole and high == as_of_day))
            rows["newest_first"].append(newest)
    tail_bits = [1 << max(high - low - tail, 0) if tail else None
                 for low, high in itertools.pairwise(cuts)]
    ends = {"bucket": [-1, *range(len(cuts) - 1)], "bucket_end": [cuts[0], *cuts[1:]],
            "tail_bit": [None, *tail_bits]}
    return Buckets(calendar=ibis.memtable(calendar, schema={k: "int64" for k in calendar}),
                   ends=ibis.memtable(ends, schema={k: "int64" for k in ends}),
                   membership=ibis.memtable(rows, schema={k: "int64" for k in rows}))


def _first_in_window(joined: ir.Table, window: str) -> ir.IntegerValue:
    """1 on the row that counts its key (user, feature) once in ``window``, else 0."""
    first = (joined.previous_bucket < joined[f"{window}_first"]).ifelse(1, 0)
    return joined[window] * first


def _account_names(accounts: ir.Table) -> ir.Table:
    """Hashed account key back to account_id, from the small accounts table (validation has
    already tied every event to a known account), so no extra pass over the events."""
    names = accounts.select("account_id", created_day=_day(accounts.created_at))
    return names.mutate(account=id_key(names.account_id))


@dataclass(frozen=True)
class EventRollups:
    """The usage events summed per bucket, for every usage source.

    Two group-bys over the events, because what needs the user and what does not cost very
    differently: the per-user group-by has 28 million groups for 100 million events, and
    every aggregate in it costs seconds at that size (with the eight this rollup once had,
    46 s in plain DuckDB SQL; with the three it keeps, 15 s; the per-account group-by,
    3.5 million groups, 10 s).

    ``per_user``: (account, user, bucket) with events, active_days, first_day, recent (1 when
    active in the bucket's tail days, see ``TAIL_WINDOWS``) and previous_bucket (the user's
    previous active bucket, -2 for none). ``per_account``: (account, bucket) with events,
    quantity, key_events, last_day, first_key_day and ``feature_mask_<k>``: bit ``i`` of word
    ``k`` set when someone used product feature ``63 k + i`` (``event_names`` order) in the
    bucket, so distinct features in a window are the set bits of an OR over its buckets.
    ``cohorts`` sums users of an account that share (bucket, previous bucket) into one row
    (users, active_days, ``recent_users``). ``onboarded``: per (account, bucket), the users
    first seen in it within 30 days of the account's creation. Days before the first window
    edge fall in bucket -1, which no window reads but onboarding (first days) does; days on or
    after the last snapshot are never read at all. Accounts are hashed integers; join ``names``
    to get ``account_id`` back.
    """

    per_user: ir.Table
    per_account: ir.Table
    cohorts: ir.Table
    onboarded: ir.Table
    buckets: Buckets
    names: ir.Table
    mask_words: int
    vocabulary: dict[str, str] = field(default_factory=dict)
    """Per-event-type measures of ``per_account`` (``events__<slug>``, ``quantity__<slug>``)
    with their types: the vocabulary's conditional sums."""

    @property
    def id_of(self) -> ir.Table:
        """Hashed account key to account_id."""
        return self.names.select("account", "account_id")


MATERIALIZE_ROLLUP_EVENTS = 20_000_000
"""Above this many usage events the per-user rollup is built first, as a table of its own.
Inside the one snapshot query, its rows (28 million for 100 million events) are held while the
joins and sums reading them run: 100M events took 121 s that way against 74 s built apart
(DuckDB at 3 GB). Below, one query reads the events once for both rollups, where building
apart reads them twice: on 10M events the whole registry took 5.7 s either way (peak memory
1.8 GB in one query, 1.2 GB apart), the ten features of the pandas baseline 3.8 s against 4.6 s."""

NO_PREVIOUS = -2
"""``previous_bucket`` of a user's first active bucket (bucket -1 holds the early days)."""


BITS_PER_WORD = 63
"""Bits of a signed 64-bit integer that ``1 << bit`` can set without overflow."""


def event_catalog(event_names: tuple[str, ...], key_events: tuple[str, ...]) -> ir.Table:
    """Each product feature (event name) with its word and bit in the feature masks, and
    ``key`` (1 for a key action; with no key events declared, every event is one)."""
    ordered = sorted(set(event_names))
    return ibis.memtable(
        {"event": ordered,
         "mask_word": [i // BITS_PER_WORD for i in range(len(ordered))],
         "mask_bit": [1 << (i % BITS_PER_WORD) for i in range(len(ordered))],
         "key": [int(not key_events or name in key_events) for name in ordered]},
        schema={"event": "string", "mask_word": "int64", "mask_bit": "int64", "key": "int64"})


def mask_words(event_names: tuple[str, ...]) -> int:
    return max(1, -(-len(set(event_names)) // BITS_PER_WORD))


def roll_up_events(events: ir.Table, accounts: ir.Table, grid: Grid,
                   key_events: tuple[str, ...], event_names: tuple[str, ...],
                   materialize: bool = True, money_event: str | None = None,
                   vocabulary: Vocabulary = Vocabulary()) -> EventRollups:
    """The rollups. With ``materialize`` the per-user rows are built at once, as a table of
    their own (Ibis' cache: a temporary table, a persisted Spark frame), before the snapshot
    query that reads them; without, they stay a part of that one query
    (``MATERIALIZE_ROLLUP_EVENTS`` says when to). ``money_event`` names the event whose
    quantity is an amount of money: its quantities are summed apart (``spend``), never with
    the other events' counts. Each event type of ``vocabulary`` gets its events (and, where
    its quantity is summed, its quantity) counted apart in the same per-account group-by,
    as sums of a condition: no second pass over the events."""
    buckets = grid.buckets(USAGE_WINDOWS, TAIL_WINDOWS, ACCOUNT_ONLY_WINDOWS)
    last_day = max(grid.as_of_days)
    # Integer keys: hashing ids once is far cheaper than grouping on strings.
    dated = events.select(account=id_key(events.account_id), user=id_key(events.user_id),
                          event=events.event, quantity=events.quantity,
                          day=_day(events.event_ts))
    dated = dated.filter(dated.day < last_day).pipe(attach, buckets.calendar, "day")
    dated = dated.mutate(bucket=dated.bucket.fill_null(-1),
                         # bigint << int: the one shift PostgreSQL has
                         day_bit=(ibis.literal(1, "int32").cast("int64")
                                  << dated.offset.fill_null(0).cast("int32")))
    # Active days are the set bits of a per-bucket mask of days, so there is no per-group set
    # of distinct days to keep; whether a user was active in the bucket's tail is whether the
    # mask reaches the tail's first bit.
    per_user = dated.group_by(["account", "user", "bucket"]).aggregate(
        events=_.count(), day_mask=bit_or(_.day_bit), first_day=_.day.min())
    per_user = per_user.pipe(attach, buckets.ends.select("bucket", "tail_bit"), "bucket")
    per_user = per_user.select(
        "account", "user", "bucket", "events", "first_day",
        active_days=bit_count(per_user.day_mask),
        recent=_flag(per_user.day_mask >= per_user.tail_bit).fill_null(0),
        previous_bucket=per_user.bucket.lag().over(
            group_by=["account", "user"], order_by="bucket").fill_null(NO_PREVIOUS))
    if materialize:
        per_user = _cached(per_user)

    words = mask_words(event_names)
    catalogued = dated.pipe(attach, event_catalog(event_names, key_events), "event")
    catalogued = catalogued.mutate(
        key=catalogued.key.fill_null(0),
        **{f"feature_bit_{k}": (catalogued.mask_word == k).ifelse(catalogued.mask_bit, 0)
           for k in range(words)})
    money: dict[str, ir.Value] = {}
    if money_event is not None:
        paid = catalogued.event == money_event
        catalogued = catalogued.mutate(money=paid.ifelse(catalogued.quantity, 0.0),
                                       money_bit=paid.ifelse(catalogued.day_bit, 0))
        money = {"spend": _.money.sum().cast("float64"), "spend_day_mask": bit_or(_.money_bit)}
    by_type: dict[str, ir.Value] = {}
    for chosen in vocabulary.events:
        this = catalogued.event == chosen.event
        by_type[chosen.measure("events")] = whole_sum(this.ifelse(1, 0))
        if chosen.sums_quantity:
            by_type[chosen.measure("quantity")] = this.ifelse(
                catalogued.quantity, 0.0).sum().cast("float64")
    per_account = catalogued.group_by(["account", "bucket"]).aggregate(
        events=_.count(), quantity=_.quantity.sum(), key_events=whole_sum(_.key),
        first_day=_.day.min(), last_day=_.day.max(),
        first_key_day=(_.key > 0).ifelse(_.day, ibis.null("int64")).min(),
        day_mask=bit_or(_.day_bit), **money,
        **{f"feature_mask_{k}": bit_or(_[f"feature_bit_{k}"]) for k in range(words)},
        **by_type)
    if not money:  # no money event: the spend columns are there, and zero, never summed
        per_account = per_account.mutate(spend=ibis.literal(0.0, "float64"),
                                         spend_day_mask=ibis.literal(0, "int64"))
    per_account = per_account.mutate(account_days=bit_count(per_account.day_mask),
                                     spend_days=bit_count(per_account.spend_day_mask))

    names = _account_names(accounts)
    cohorts = per_user.group_by(["account", "bucket", "previous_bucket"]).aggregate(
        users=_.count(), active_days=whole_sum(_.active_days), recent_users=whole_sum(_.recent))
    # users first seen within 30 days of their account's creation, by the bucket they appeared
    newcomers = per_user.filter(per_user.previous_bucket == NO_PREVIOUS).join(
        names.select("account", "created_day"), "account")
    onboarded = newcomers.filter(
        newcomers.first_day < newcomers.created_day + ONBOARDING_DAYS).group_by(
        ["account", "bucket"]).aggregate(onboarded_users=_.count())
    return EventRollups(per_user=per_user, per_account=per_account, cohorts=cohorts,
                        onboarded=onboarded, buckets=buckets, names=names, mask_words=words,
                        vocabulary={m: str(v.type()) for m, v in by_type.items()})


def _cached(table: ir.Table) -> ir.Table:
    """``table`` computed now into a temporary table (a persisted frame on Spark)."""
    backend = ibis.get_backend(table)
    if backend.name == "pyspark":
        # Ibis' Spark cache compiles the query without first registering the in-memory
        # tables it reads (the bucket calendar), which Spark then cannot find
        backend._run_pre_execute_hooks(table)  # type: ignore[attr-defined]
    return table.cache()


def _windows(rollups: EventRollups, grid: Grid) -> ir.Table:
    """The bucket membership of every snapshot's windows, with its ``as_of``."""
    return rollups.buckets.membership.join(grid.table, "as_of_day")


def _in_windows(rollups: EventRollups, grid: Grid, rows: ir.Table,
                only: tuple[str, ...] = ()) -> ir.Table:
    """Bucket rows joined to every snapshot whose look-back holds them; with ``only``, to the
    snapshots one of whose ``only`` windows holds them (the membership is cut before the join:
    since the year-long windows, a bucket lies in twice as many look-backs as short windows
    read)."""
    membership = _windows(rollups, grid)
    if only:
        membership = membership.filter(
            sum((membership[w] for w in only[1:]), membership[only[0]]) > 0)
    return rows.join(membership, "bucket")


ACCOUNT_MEASURES = {"events": "int64", "account_days": "int64", "spend": "float64",
                    "spend_days": "int64"}
"""Per-account sums kept for every window of ``ACCOUNT_MEASURE_WINDOWS``, as
``<measure>_<window>`` columns of ``usage``: account days are the days on which anyone of the
account acted, spend and spend days those of the money event."""
ACCOUNT_MEASURE_WINDOWS = ("w30", "w90", "prev90", "w180", "w365")


def account_measure(usage: ir.Table, measure: str, days: int,
                    previous: bool = False) -> ir.IntegerValue | ir.FloatingValue:
    """The ``usage`` column holding ``measure`` summed over the last ``days`` days (or the
    ``days`` before those). Only windows the engine sums per account exist: a 7-day window,
    for one, is read from a tail of its bucket per user, and summing it per account would
    quietly read a month; asking for it is an error that says which windows there are."""
    window = window_key(days, previous)
    if "__" in measure:  # one event type's measure (``usage_by_user``'s ``vocabulary``)
        column = f"{measure}_{window}"
        if window not in ACCOUNT_MEASURE_WINDOWS or column not in usage.columns:
            raise KeyError(f"no per-account {measure} over {window}: this build sums the "
                           f"vocabulary's measures over "
                           f"{sorted(c for c in usage.columns if '__' in c)}")
        return usage[column]  # type: ignore[return-value]
    if measure not in ACCOUNT_MEASURES or window not in ACCOUNT_MEASURE_WINDOWS:
        raise KeyError(f"no per-account {measure} over {window}: the engine sums "
                       f"{sorted(ACCOUNT_MEASURES)} over {list(ACCOUNT_MEASURE_WINDOWS)}")
    return usage[f"{measure}_{window}"]  # type: ignore[return-value]


def vocabulary_column(measure: str, days: int) -> str:
    """The ``usage`` column of one event type's ``measure`` over the last ``days`` days."""
    return f"{measure}_{window_key(days)}"


def usage_by_user(rollups: EventRollups, grid: Grid,
                  vocabulary: tuple[tuple[str, int], ...] = (),
                  windowed: frozenset[str] | None = None) -> ir.Table:
    """Activity rows per (account, as_of); summing a column over them gives a feature.

    ``active_30`` counts a user once, on their first active bucket in the last 30 days, so its
    sum is the distinct active users. Users of an account that share (bucket, previous
    bucket) are summed into one row first, and a row joins only the snapshots where it counts
    someone (its previous bucket lies before some window's first): a user active month after
    month counts in a handful of a snapshot's buckets, not in all twenty. What needs no single
    user (events, quantity, active days, who was active in the last days, the last active day)
    comes from one row per (account, bucket), stacked under them with zeros where a row has
    nothing to say, and the year's sums over buckets older than 180 days from a third, narrow
    stack. Rows carry the hashed ``account``: the features are summed per
    (account, as_of) before ``id_of`` names them. ``vocabulary`` names the (event type
    measure, days) sums the build's generated features read (``vocabulary_column``).
    ``windowed`` names the per-window columns (``<measure>_<window>``, ``first_age_w365``) to
    sum, where the build's features are known to read only those: each is a sum over every
    (bucket, snapshot) row of the year's look-back, so one that no feature reads is not free.
    """
    membership = _windows(rollups, grid)
    cohorts = rollups.cohorts
    counted = cohorts.join(membership, [cohorts.bucket == membership.bucket,
                                        cohorts.previous_bucket < membership.newest_first])
    zero = ibis.literal(0, "int64")

    def users_in(window: str) -> ir.IntegerValue:
        return counted.users * _first_in_window(counted, window)

    # each half is summed per (account, as_of) before they are stacked: one group-by over
    # both halves' rows, eleven sums wide, cost more than the two narrow ones
    people = counted.group_by(["account", "as_of"]).aggregate(
        active_7=whole_sum(users_in("w7")), active_30=whole_sum(users_in("w30")),
        active_prev_30=whole_sum(users_in("prev30")), active_90=whole_sum(users_in("w90")),
        active_prev_90=whole_sum(users_in("prev90")))
    history = {f"{measure}_{window}": (measure, window)
               for measure in ACCOUNT_MEASURES for window in ACCOUNT_MEASURE_WINDOWS}
    types = {**ACCOUNT_MEASURES, **rollups.vocabulary}
    for measure, days in vocabulary:
        if measure not in rollups.vocabulary:
            raise KeyError(f"the rollup does not count {measure}: not in the build's vocabulary")
        history[vocabulary_column(measure, days)] = (measure, window_key(days))
    if windowed is not None:
        history = {name: pair for name, pair in history.items() if name in windowed}
    first_age = windowed is None or "first_age_w365" in windowed
    people = people.mutate(
        days_30=zero, events_30=zero, events_prev_30=zero,
        quantity_30=ibis.literal(0.0, "float64"), key_30=zero, last_age=ibis.null("int64"),
        **({"first_age_w365": ibis.null("int64")} if first_age else {}),
        **{name: ibis.literal(0, types[measure])
           for name, (measure, _window) in history.items()})
    days = cohorts.group_by(["account", "bucket"]).aggregate(
        active_days=whole_sum(_.active_days), recent_users=whole_sum(_.recent_users))
    per_bucket = rollups.per_account.pipe(attach, days, ["account", "bucket"])
    # The buckets of the last 180 days carry every window. The older ones of the year carry
    # only the year's sums, in a narrow sum of their own stacked under the rest: summed with
    # every window's product, they were half the rows of the build's widest group-by.
    recent = _in_windows(rollups, grid, per_bucket, only=("w180",))
    yearly = {name: measure for name, (measure, window) in history.items() if window == "w365"}
    totals = recent.group_by(["account", "as_of"]).aggregate(
        active_7=whole_sum(recent.recent_users.fill_null(0) * recent.w7_tail),
        days_30=whole_sum(recent.active_days.fill_null(0) * recent.w30),
        events_30=whole_sum(recent.events * recent.w30),
        events_prev_30=whole_sum(recent.events * recent.prev30),
        quantity_30=(recent.quantity * recent.w30).sum().cast("float64"),
        key_30=whole_sum(recent.key_events * recent.w30),
        last_age=(recent.as_of_day - recent.last_day).min(),
        **({"first_age_w365": (recent.as_of_day - recent.first_day).max()} if first_age else {}),
        **{name: _sum_as(recent[measure] if window == "w365" else recent[measure] * recent[window],
                         types[measure])
           for name, (measure, window) in history.items()})
    totals = totals.mutate(active_30=zero, active_prev_30=zero, active_90=zero,
                           active_prev_90=zero)
    older_buckets = membership.filter((membership.w365 == 1) & (membership.w180 == 0))
    older = rollups.per_account.join(older_buckets, "bucket")
    older = older.group_by(["account", "as_of"]).aggregate(
        last_age=(older.as_of_day - older.last_day).min(),
        **({"first_age_w365": (older.as_of_day - older.first_day).max()} if first_age else {}),
        **{name: _sum_as(older[measure], types[measure]) for name, measure in yearly.items()})
    older = older.mutate(**{name: zero for name in ("active_7", "active_30", "active_prev_30",
                                                    "active_90", "active_prev_90", "days_30",
                                                    "events_30", "events_prev_30", "key_30")},
                         quantity_30=ibis.literal(0.0, "float64"),
                         **{name: ibis.literal(0, types[measure])
                            for name, (measure, window) in history.items()
                            if window != "w365"})
    return ibis.union(people, totals.select(*people.columns), older.select(*people.columns))


def user_activity_30d(rollups: EventRollups, grid: Grid) -> ir.Table:
    """One row per (hashed account, as_of, user) active in the last 30 days, with their
    events."""
    joined = _in_windows(rollups, grid, rollups.per_user, only=("w30",))
    per_user = joined.group_by(["account", "as_of", "user"]).aggregate(
        events_30=joined.events.sum())
    return per_user


def last_activity(events: ir.Table, grid: Grid, lookback_days: int) -> ir.Table:
    """One row per (account, as_of) with an event in the ``lookback_days`` before as_of.

    ``last_age`` is the days since the latest of them (1 for the day before as_of).
    """
    days = events.select("account_id", day=_day(events.event_ts)).distinct()
    g = grid.table
    joined = days.join(g, [days.day < g.as_of_day, days.day >= g.as_of_day - lookback_days])
    return joined.group_by(["account_id", "as_of"]).aggregate(
        last_age=(joined.as_of_day - joined.day).min())


def usage_by_feature(rollups: EventRollups, grid: Grid) -> ir.Table:
    """Per (hashed account, as_of) rows of feature masks by window; OR them, count the
    bits."""
    masks = [f"feature_mask_{k}" for k in range(rollups.mask_words)]
    windows = ("w30", "prev30", "w90")
    joined = _in_windows(rollups, grid, rollups.per_account, only=windows)
    rows = joined.select(
        "account", "as_of",
        **{f"{window}_{m}": joined[m] * joined[window] for window in windows for m in masks})
    return rows


def distinct_features(feature_usage: ir.Table, window: str) -> ir.IntegerValue:
    """Product features used in ``window``: set bits of the OR of its feature masks."""
    words = [c for c in feature_usage.columns if c.startswith(f"{window}_feature_mask_")]
    total: ir.IntegerValue = bit_count(bit_or(feature_usage[words[0]]))
    for column in words[1:]:
        total = total + bit_count(bit_or(feature_usage[column]))
    return total


def tickets_seen(tickets: ir.Table, grid: Grid) -> ir.Table:
    """Tickets opened in the 180 days before as_of, with what was known of them at as_of."""
    g = grid.table
    t = tickets.mutate(created_day=_day(tickets.created_at))
    joined = t.join(g, [t.created_day < g.as_of_day,
                        t.created_day >= g.as_of_day - TICKET_LOOKBACK_DAYS])
    as_of_ts = joined.as_of.cast("timestamp(6)")
    resolved_known = joined.resolved_at.notnull() & (joined.resolved_at < as_of_ts)
    # float before dividing: Spark reads 3600.0 as a decimal and would round to 6 places
    seconds = joined.resolved_at.epoch_seconds() - joined.created_at.epoch_seconds()
    hours = seconds.cast("float64") / 3600.0
    return joined.select(
        "account_id", "as_of", "ticket_id", "category",
        age=joined.as_of_day - joined.created_day,
        severe=_flag(joined.priority.isin(["high", "urgent"])),
        open=_flag(~resolved_known),
        resolution_hours=resolved_known.ifelse(hours, ibis.null("float64")),
        csat=resolved_known.ifelse(joined.csat, ibis.null("float64")),
    )


def surveys_seen(surveys: ir.Table, grid: Grid) -> ir.Table:
    """NPS answers given in the 365 days before as_of.

    ``answer_order`` numbers an account's answers by ``responded_at``, then ``response_id``:
    the latest answer has the highest number, and two answers given at the same moment are
    told apart by their ids, so the latest is always one and the same answer. Later answers
    only add numbers after it; they never reorder the ones before as_of.
    """
    g = grid.table
    s = surveys.mutate(day=_day(surveys.responded_at), answer_order=ibis.row_number().over(
        group_by="account_id", order_by=[surveys.responded_at, surveys.response_id]))
    joined = s.join(g, [s.day < g.as_of_day, s.day >= g.as_of_day - SURVEY_LOOKBACK_DAYS])
    return joined.select(
        "account_id", "as_of", "response_id", "score", "answer_order",
        age=joined.as_of_day - joined.day,
    )


def _subscription_days(subscriptions: ir.Table) -> ir.Table:
    return subscriptions.mutate(start_day=_day(subscriptions.start_date),
                                end_day=_day(subscriptions.end_date))


def held_at(subscriptions: ir.Table, grid: Grid, days_before: int = 0) -> ir.Table:
    """The subscription each account held at ``as_of - days_before``.

    Held means started before that day and not ended before it; an end date on or after it is
    not yet known at as_of and is never read. Subscriptions of one account do not overlap
    (validation sees to it), so there is at most one.
    """
    s = _subscription_days(subscriptions)
    g = grid.table
    ref = g.as_of_day - days_before
    joined = s.join(g, [s.start_day < ref, s.end_day.isnull() | (s.end_day >= ref)])
    return joined.select("account_id", "as_of", "as_of_day", "subscription_id", "plan", "seats",
                         "mrr", "billing_period", "start_day")


def subscription_state(subscriptions: ir.Table, grid: Grid) -> ir.Table:
    """One row per (account, as_of) held at as_of, with the commercial history before it."""
    s = _subscription_days(subscriptions)
    g = grid.table
    now = held_at(subscriptions, grid)

    ago = held_at(subscriptions, grid, days_before=90).select(
        "account_id", "as_of", mrr_90d_ago="mrr")

    first = s.group_by("account_id").aggregate(anchor_day=s.start_day.min())

    ordered = s.mutate(previous_mrr=s.mrr.lag().over(
        group_by="account_id", order_by=[s.start_day, s.subscription_id]))
    changes = ordered.join(g, [ordered.start_day < g.as_of_day,
                               ordered.start_day >= g.as_of_day - COMMERCIAL_LOOKBACK_DAYS])
    moves = changes.group_by(["account_id", "as_of"]).aggregate(
        downgrades_365d=(changes.mrr < changes.previous_mrr).sum(),
        expansions_365d=(changes.mrr > changes.previous_mrr).sum(),
    )

    priced = s.filter(s.seats > 0)
    known = priced.join(g, priced.start_day < g.as_of_day)
    list_price = known.group_by(["as_of", "plan"]).aggregate(
        list_price_per_seat=(known.mrr / known.seats).max())

    state = (now.pipe(attach, ago, ["account_id", "as_of"])
             .pipe(attach, first, "account_id")
             .pipe(attach, moves, ["account_id", "as_of"])
             .pipe(attach, list_price, ["as_of", "plan"]))
    return state.mutate(
        downgrades_365d=state.downgrades_365d.fill_null(0),
        expansions_365d=state.expansions_365d.fill_null(0),
        days_to_renewal=days_to_renewal(state.as_of, state.anchor_day, state.billing_period),
    )


def days_to_renewal(as_of: ir.DateValue, anchor_day: ir.IntegerValue,
                    billing_period: ir.StringValue) -> ir.IntegerValue:
    """Days from as_of to the next anniversary of the account's first subscription day.

    Monthly plans renew every month on the anchor's day, annual plans every year; a renewal on
    as_of itself counts as 0 days away.
    """
    anchor = ibis.date(1970, 1, 1) + anchor_day.as_interval("D")  # type: ignore[attr-defined]
    months = (as_of.year() - anchor.year()) * 12 + (as_of.month() - anchor.month())
    annual = billing_period == "annual"
    step = annual.ifelse(12, 1)
    # whole periods elapsed, rounded down to a multiple of the period
    elapsed = (months // step) * step
    candidate = anchor + elapsed.as_interval("M")  # type: ignore[attr-defined]
    next_renewal = (candidate < as_of).ifelse(
        anchor + (elapsed + step).as_interval("M"), candidate)  # type: ignore[attr-defined]
    return next_renewal.epoch_days() - as_of.epoch_days()  # type: ignore[attr-defined]


def account_state(accounts: ir.Table, population: ir.Table) -> ir.Table:
    """Static account facts for every snapshot in the population."""
    a = accounts.select("account_id", "industry", "region", "csm",
                        created_day=_day(accounts.created_at))
    joined = population.pipe(attach, a, "account_id")
    return joined.select("account_id", "as_of", "as_of_day", "industry", "region", "csm",
                         "created_day")


def onboarding_state(accounts: ir.Table, rollups: EventRollups,
                     subscriptions: ir.Table | None, population: ir.Table) -> ir.Table:
    """What the first 30 days showed, as far as they had happened by as_of.

    A user's first event, an account's first key action and its first subscription are each a
    minimum over all time; a minimum before as_of is the same minimum, and one on or after
    as_of is masked, so nothing later leaks in.
    """
    a = accounts.select("account_id", created_day=_day(accounts.created_at))
    # a bucket lies before as_of exactly when it ends on or before as_of: every as_of is a cut
    onboarded = rollups.onboarded.join(rollups.buckets.ends, "bucket").join(rollups.id_of,
                                               "account")
    pop = population.pipe(attach, a, "account_id", how="inner")
    partial = pop.join(onboarded, [pop.account_id == onboarded.account_id,
                                   onboarded.bucket_end <= pop.as_of_day]).select(
        pop.account_id, pop.as_of, onboarded.onboarded_users)
    partial = partial.group_by(["account_id", "as_of"]).aggregate(
        activated_users=partial.onboarded_users.sum())

    per_account = rollups.per_account
    first_key = per_account.group_by("account").aggregate(
        first_key_day=per_account.first_key_day.min(),
        first_event_day=per_account.first_day.min())
    first_key = first_key.join(rollups.id_of, "account").drop(
        "account")
    state = (pop.pipe(attach, partial, ["account_id", "as_of"])
             .pipe(attach, first_key, "account_id"))
    if subscriptions is not None:
        s = _subscription_days(subscriptions)
        first_sub = s.mutate(rank=ibis.row_number().over(
            group_by="account_id", order_by=[s.start_day, s.subscription_id]))
        first_sub = first_sub.filter(first_sub.rank == 0).select(
            "account_id", first_start_day="start_day", seats_at_signup="seats")
        state = state.pipe(attach, first_sub, "account_id")
    else:
        state = state.mutate(first_start_day=ibis.null("int64"),
                             seats_at_signup=ibis.null("int64"))
    known_key = state.first_key_day < state.as_of_day
    known_event = state.first_event_day < state.as_of_day
    known_sub = state.first_start_day < state.as_of_day
    return state.select(
        "account_id", "as_of", "as_of_day", "created_day",
        activated_users=state.activated_users.fill_null(0),
        window_closed=_flag(state.as_of_day >= state.created_day + ONBOARDING_DAYS),
        first_key_day=known_key.ifelse(state.first_key_day, ibis.null("int64")),
        first_event_day=known_event.ifelse(state.first_event_day, ibis.null("int64")),
        seats_at_signup=known_sub.ifelse(state.seats_at_signup, ibis.null("int64")),
    )
