"""bench --stream-only: the streaming table (every streamed row exact, as the stream promises) and the demo
model's shorter-lookahead rows."""
import pytest

from test_bench import md_table, run_bench_from_repo


@pytest.fixture(scope="module")
def stream_report(tmp_path_factory):
    stdout, markdown, report, have_checkpoint = run_bench_from_repo(tmp_path_factory.mktemp("bench_stream"),
                                                                    "--stream-only", "--quick", "--threads", 1)
    assert markdown.strip() in stdout
    return markdown, report, have_checkpoint


def test_every_streamed_row_is_exact(stream_report):
    markdown, report, _ = stream_report
    rows = report["stream"]["latency"]
    assert [(r["config"], r["chunk_frames"]) for r in rows] == [("v2", c) for c in ("whole", 8, 16, 32, 64)]
    assert rows[0]["vs_whole"] == 1.0 and all(r["lookahead_frames"] == 13 for r in rows[1:])  # V2's right context
    assert all(r["exact"] for r in rows)
    assert all(0 < r["first_audio_s"] <= r["total_s"] and r["x_real_time"] > 0 for r in rows)
    table = md_table(markdown, "Streaming")  # the latency rows, then the lookahead table's
    assert [(row["config"], row["exact"]) for row in table[:len(rows)]] == [("v2", "yes")] * len(rows)


def test_lookahead_rows_on_the_demo_model(stream_report):
    _, report, have_checkpoint = stream_report
    rows = report["stream"]["lookahead"]
    if not have_checkpoint:
        assert len(rows) == 1 and rows[0]["status"].startswith("skipped")
        return
    lookaheads = [r["lookahead_frames"] for r in rows]
    assert lookaheads == sorted(lookaheads) and lookaheads[0] == 0
    assert rows[-1]["exact"] and rows[-1]["max_abs_error"] == 0  # the model's whole right context
    assert not any(r["exact"] for r in rows[:-1])
    assert all(r["snr_db"] is not None and r["max_abs_error"] > 0 for r in rows[:-1])
    by = {r["lookahead_frames"]: r for r in rows}
    assert by[0]["max_abs_error"] > by[8]["max_abs_error"]  # more of the right context, closer to the whole
