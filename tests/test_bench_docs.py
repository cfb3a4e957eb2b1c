"""``mindood bench docs`` runs end to end on a tiny workload, each figure with its floor."""

from __future__ import annotations

from pathlib import Path

from mindood.bench_docs import batch_ceiling, per_document_floor, run_docs_bench, summary


def test_the_per_document_floor_combines_the_rates() -> None:
    assert per_document_floor(100.0, 100.0, 100.0) == round(100 / 3, 1)
    assert per_document_floor(100.0, 100.0, 100.0, signatures=2) == 25.0


def test_the_batch_ceiling_shares_signing_but_not_the_binding() -> None:
    # 2 signatures + AES + binding = 60 ms per doc of CPU; 2 cores share it, 30 ms each
    assert batch_ceiling(50.0, 100.0, 100.0, cores=2) == 33.3
    # with 8 cores the one core running AES and the binding (20 ms per doc) is the limit
    assert batch_ceiling(100.0, 100.0, 100.0, cores=8) == 50.0
    assert batch_ceiling(100.0, 1e9, 1e9, cores=1) == 50.0


async def test_a_tiny_docs_bench_reports_ratios_to_its_floors(tmp_path: Path) -> None:
    result = await run_docs_bench(tmp_path, documents=5, batch=20, floor_seconds=0.05)
    assert result["read_documents"] == 25
    for key in (
        "creates_vs_floor",
        "changes_vs_floor",
        "store_puts_per_s",
        "creates_vs_store_puts",
        "batch_creates_vs_sign",
        "batch_changes_vs_sign",
        "cold_batch_reads_vs_goal",
        "cold_batch_reads_vs_automerge_loads",
        "store_doc_fetches_per_s",
        "batch_ceiling_per_s",
        "batch_creates_vs_ceiling",
        "automerge_binding_creates_per_s",
    ):
        assert result[key] > 0, key
    assert result["per_document_floor_two_signatures_per_s"] < result["per_document_floor_per_s"]
    assert len(summary(result)) == 4
    assert not (tmp_path / "fsync-probe").exists()  # the probe cleans up
