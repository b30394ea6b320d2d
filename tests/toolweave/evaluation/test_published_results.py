"""StableToolBench's published pass-rate and preference files read as its scripts read them: the golden file
holds what eval_pass_rate.py and eval_preference.py printed and returned on them
(scripts/reference/record_stabletoolbench_results.py)."""
import json
from pathlib import Path

import pytest

from toolweave.evaluation.published_results import (preference_rates, read_pass_rate_csv, read_pass_rate_json,
                                                    solve_rate)

DATA = Path(__file__).parents[2] / "data"
STB = DATA / "stabletoolbench" / "data_example"
GOLDEN = json.loads((DATA / "reference" / "stabletoolbench" / "results_reading_golden.json").read_text())
MODELS = ("virtual_chatgpt_cot", "virtual_chatgpt_dfs")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("times", [3, 4])
def test_solve_rate_is_what_eval_pass_rate_prints(model, times):
    passes = read_pass_rate_json(STB / "pass_rate_results" / model / f"G1_instruction_{model}.json")
    rate, std = solve_rate(passes, times)
    assert GOLDEN["pass_rate"][model][f"evaluate_times_{times}"] == [
        f"Test set: G1_instruction. Model: {model}.", f"Solve rate: {rate:.1f}% Std: {std:.1f}%"]


@pytest.mark.parametrize("model", MODELS)
def test_csv_rows_are_what_get_pass_rate_results_returns_without_its_header_row(model):
    csv_passes = read_pass_rate_csv(STB / "pass_rate_results" / model / f"G1_instruction_{model}.csv")
    golden = {qid: row for qid, row in GOLDEN["pass_rate_csv"][model].items() if qid != "query_id"}
    assert GOLDEN["pass_rate_csv"][model]["query_id"]["is_solved"] == "is_solved"  # the reference keeps the header row as a query
    assert {p.query_id: (p.is_solved_text, p.query) for p in csv_passes} == {
        qid: (row["is_solved"], row["query"]) for qid, row in golden.items()}
    json_passes = read_pass_rate_json(STB / "pass_rate_results" / model / f"G1_instruction_{model}.json")
    assert {p.query_id: p.rounds for p in csv_passes} == {p.query_id: p.rounds for p in json_passes}


def test_preference_rates_are_what_eval_preference_prints():
    rates = preference_rates(STB / "preference_results" / "G1_instruction_virtual_chatgpt_cot_virtual_chatgpt_dfs.json",
                             *MODELS)
    assert GOLDEN["preference"]["printed"] == [
        f"Test set: G1_instruction. Reference model: {MODELS[0]}, Candidate model: {MODELS[1]}. "
        f"Win rate: {rates['win']}, Tie rate: {rates['tie']}"]
    assert rates["lose"] == 0.0


def test_bad_files_name_the_file_and_query(tmp_path):
    bad = tmp_path / "G1_instruction_m.json"
    bad.write_text(json.dumps({"7": {"query": "q", "is_solved": ["AnswerStatus.Solved"]}}))
    with pytest.raises(ValueError, match=r"G1_instruction_m.json: query 7: is_solved is not a map"):
        read_pass_rate_json(bad)
    bad.write_text(json.dumps({"7": {"m": 1}}))
    with pytest.raises(ValueError, match=r"query 7: no win counts for 'm' and 'n'"):
        preference_rates(bad, "m", "n")
    csv_file = tmp_path / "r.csv"
    csv_file.write_text("query\tquery_id\tis_solved\nq\t9\tSolved\n")
    with pytest.raises(ValueError, match=r"r.csv: query 9: is_solved 'Solved' is not a dict of rounds"):
        read_pass_rate_csv(csv_file)
    csv_file.write_text("a,b\n")
    with pytest.raises(ValueError, match="not a pass-rate CSV"):
        read_pass_rate_csv(csv_file)
