"""`spacevllm unistg run` end to end on the synthetic world with the noisy oracle detector."""

from spacevllm.cli import main
from spacevllm.data.records import read_records


def test_run_on_world_recovers_tubes_and_resumes(tmp_path, capsys):
    from spacevllm.data.world import generate_world

    records = generate_world(tmp_path / "world", n=12, seed=321)
    config = "src/spacevllm/configs/unistg/world.yaml"
    out = tmp_path / "out"
    args = ["unistg", "run", "--config", config, "--input", str(records), "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "analyzer" in text and "refiner" in text and "filter" in text
    kept = read_records(out / "records.jsonl")
    assert 0 < len(kept) <= 24 and all(r.task == "stvg" and r.boxes for r in kept)
    truth = {r.id: r for r in read_records(records)}
    for r in kept:  # refined ranges stay inside the clip and near the truth
        assert r.start >= 0 and r.end <= truth[r.id].duration + 1e-6
        assert abs(r.start - truth[r.id].start) <= 1.0
    first = (out / "records.jsonl").read_bytes()
    assert main(args) == 0  # resume: done videos skipped, same output
    assert (out / "records.jsonl").read_bytes() == first


def test_run_bad_config(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("input: [unclosed\n")
    assert main(["unistg", "run", "--config", str(bad)]) == 2
    assert "Traceback" not in capsys.readouterr().err
