"""The benchmark suite's report: ratios are taken within each round, so a machine that speeds up
or slows down between rounds does not move them."""
import os


def _summarize(monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from benchmarks.run import summarize
    return summarize


def _result(name, rnd, sps, first=1.0):
    return {"name": name, "model": "mlp", "round": rnd, "samples_per_s": sps, "first_step_s": first,
            "test_accuracy_after_epoch_1": 0.9, "peak_rss_mb": 100.0 + rnd}


def test_ratios_are_taken_within_each_round(monkeypatch):
    summarize = _summarize(monkeypatch)
    # the machine ran twice as fast in round 1; within each round fl_torch is 0.9x, then 0.95x
    results = [_result("fl_fit", 0, 100.0), _result("fl_torch", 0, 90.0, 2.0),
               _result("fl_fit", 1, 200.0), _result("fl_torch", 1, 190.0, 3.0),
               {"name": "equinox", "model": "mlp", "round": 0, "skipped": "equinox not installed"},
               {"name": "equinox", "model": "mlp", "round": 1, "skipped": "equinox not installed"}]
    row = summarize("mlp", "fl_torch", results, peak=100.0, rounds=2)
    assert row["x fl_fit"] == 0.925 and row["x fl_fit per round"] == "0.900, 0.950"
    assert row["samples/s"] == 140 and row["first step s"] == 2.5 and row["peak RSS MB"] == 101
    assert row["note"] == "median of 2 rounds"
    assert summarize("mlp", "fl_fit", results, 100.0, 2)["x fl_fit"] == 1.0
    skipped = summarize("mlp", "equinox", results, 100.0, 2)
    assert skipped["samples/s"] == "-" and skipped["note"] == "equinox not installed"


def test_a_round_without_fl_fit_gives_no_ratio_for_that_round(monkeypatch):
    summarize = _summarize(monkeypatch)
    results = [_result("fl_fit", 0, 100.0), _result("fl_torch", 0, 80.0), _result("fl_torch", 1, 300.0),
               {"name": "fl_fit", "model": "mlp", "round": 1, "skipped": "timed out after 1200 s"}]
    row = summarize("mlp", "fl_torch", results, peak=100.0, rounds=2)
    assert row["x fl_fit"] == 0.8 and row["x fl_fit per round"] == "0.800"
