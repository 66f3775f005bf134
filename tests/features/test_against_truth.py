"""On a generated company, the labels agree with the simulation's own truth."""

from __future__ import annotations

import duckdb
import pytest

from churnlens.features.pipeline import build_features, read_snapshots
from churnlens.features.snapshots import SnapshotSpec
from churnlens.raw.loader import open_source
from churnlens.raw.mapping import Mapping
from churnlens.raw.validation import validate_history
from churnlens.synth import CompanyConfig, generate_company
from conftest import NOW


@pytest.fixture(scope="module")
def snapshots_and_truth(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("truth")
    generate_company(CompanyConfig(accounts=600, months=18, seed=21, rollouts=16), base / "raw")
    history = validate_history(open_source(base / "raw", Mapping()), now=NOW.replace(year=2030))
    build_features(history, SnapshotSpec(), base / "features")
    snapshots = read_snapshots(base / "features")
    con = duckdb.connect()
    con.register("snapshots", snapshots)
    con.execute(f"CREATE VIEW truth AS SELECT * FROM '{base / 'raw' / 'truth.parquet'}'")
    return con


def test_population_is_exactly_the_truth_population(snapshots_and_truth) -> None:  # type: ignore[no-untyped-def]
    con = snapshots_and_truth
    first = con.execute("SELECT min(as_of) FROM snapshots").fetchone()[0]
    missing = con.execute(f"""SELECT account_id, as_of FROM truth WHERE as_of >= DATE '{first}'
                             EXCEPT SELECT account_id, as_of FROM snapshots""").fetchall()
    # the last snapshot sits on the day the history ends: scored, but beyond the simulation
    last = con.execute("SELECT max(as_of) FROM truth").fetchone()[0]
    extra = con.execute(f"""SELECT account_id, as_of FROM snapshots WHERE as_of <= DATE '{last}'
                            EXCEPT SELECT account_id, as_of FROM truth""").fetchall()
    assert not missing[:5] and not extra[:5]


@pytest.mark.parametrize(("label", "truth"), [("churned", "p_churn_90d"),
                                              ("expanded", "p_expand_90d")])
def test_label_rates_match_true_probabilities(snapshots_and_truth, label: str,  # type: ignore[no-untyped-def]
                                              truth: str) -> None:
    con = snapshots_and_truth
    rows, observed, expected, variance = con.execute(f"""
        SELECT count(*), sum({label}::INT), sum(t.{truth}), sum(t.{truth} * (1 - t.{truth}))
        FROM snapshots s JOIN truth t USING (account_id, as_of) WHERE s.labelled""").fetchone()
    assert rows > 2000
    # rows of one account are correlated across months: allow twice the independent-row spread
    bound = 4 * 2 * variance ** 0.5
    assert abs(observed - expected) < bound, (
        f"{label}: observed {observed} vs expected {expected:.1f} over {rows} snapshots "
        f"(bound {bound:.1f})")
