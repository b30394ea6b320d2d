"""Proof of value: base model vs the model trained on the chain's verified episodes, on held-out
queries of tools never seen in training, through the product's own stages (`toolweave run`).

    python benchmarks/proof_of_value.py --profile cpu [--rounds N] [--chatgpt-answers WHEN] [KEY=VALUE ...]

Config: benchmarks/proof_of_value.yaml (its header says what it holds). Per round k (run dir
`<run_dir>/round<k>`): instructions (round 1; later rounds reuse its toolsets/ and instructions/) ->
solve the train split with the generator (the base model, then the model of round k-1: expert
iteration) -> verify -> sft_data (verified episodes only; the real ChatGPT DFSDT answers of tests/data that
offer no held-out tool join them when none of the generator's episodes passed, or with
`--chatgpt-answers always`; the table's header says so) -> train -> evaluate (the trained model
solves the test_tool split). The base model solves the same queries with the same engine settings and
seed in `<run_dir>/base`. Prints one table (metric, base, trained, difference, bootstrap CI over
queries, n) and writes `<run_dir>/proof_of_value.json` and the before/after section of each round's
report.html.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolweave.config import RunConfig, load_config  # noqa: E402
from toolweave.evaluation.report import write_before_after  # noqa: E402
from toolweave.evaluation.tool_use import compare, score_queries, table_text  # noqa: E402
from toolweave.io import read_records  # noqa: E402
from toolweave.schemas import Episode, EvalResult, Instruction, Tool  # noqa: E402
from toolweave.stages.registry import chain  # noqa: E402

CONFIG = ROOT / "benchmarks" / "proof_of_value.yaml"
ANSWERS = "tests/data/toolbench/data_example/answer"
SHARED = ("toolsets", "instructions")  # round 1 makes them; the base run and later rounds reuse them
# queries solved per split and training steps; gpu = 10x the data and steps
PROFILES: dict[str, list[str]] = {
    "cpu": ["run.limit=16", "train.max_steps=20"],
    "gpu": ["run.limit=160", "train.max_steps=200", "run.max_in_flight=64", "train.num_workers=1",
            "llm.embedded.dtype=bfloat16"],
}
Runner = Callable[[RunConfig, list], dict[str, Any]]


def _runner() -> Runner:
    from ray_jobs.cli import run_stages
    return run_stages


def base_model(cfg: RunConfig) -> str:
    """The generator of round 1 as evaluate's `solve_with` takes it: a local dir."""
    if cfg.train.model == "smollm2":
        from toolweave.llm.engine import smollm2_hf_dir
        return str(smollm2_hf_dir())
    return cfg.train.model


def round_config(cfg: RunConfig, name: str, **updates: Any) -> RunConfig:
    data = cfg.model_dump()
    data["run_dir"] = str(Path(cfg.run_dir) / name)
    for dotted, value in updates.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return RunConfig.model_validate(data)


def _share(src: RunConfig, dst: RunConfig) -> None:
    for name in SHARED:
        if not dst.path(name).exists():
            shutil.copytree(src.path(name), dst.path(name))


def held_out_function_names(cfg: RunConfig) -> set[str]:
    from toolweave.toolsets.export import openai_tools
    instructions, _ = read_records(cfg.path("instructions"), Instruction)
    tools = {t.id: t for t in read_records(cfg.path("toolsets"), Tool)[0]}
    held = {t for i in instructions if i.split != "train" for t in i.tool_ids}
    names: set[str] = set()
    for naming in ("toolbench", "plain"):
        names |= set(openai_tools([tools[t] for t in held if t in tools], naming)[1])  # type: ignore[arg-type]
    return names


def unseen_answers(cfg: RunConfig) -> tuple[list[str], list[str]]:
    """(usable, left out): the shipped ChatGPT answer files that offer no held-out tool, and those that
    do (training on them would show the model a test tool: the split is by tool)."""
    from toolweave.converters.toolbench import answer_to_episode
    held = held_out_function_names(cfg)
    usable, left_out = [], []
    for f in sorted(Path(ANSWERS).rglob("*.json")):
        seen = {t["function"]["name"] for t in answer_to_episode(f).tools} & held
        (left_out if seen else usable).append(str(f))
    return usable, left_out


def sft_rows(cfg: RunConfig) -> int:
    from toolweave.io import iter_rows, part_files
    return sum(1 for _ in iter_rows(cfg.path("sft"), ["episode_ids"])) if part_files(cfg.path("sft")) else 0


def stage_times(summary: dict[str, Any]) -> dict[str, float]:
    """Seconds per stage of one `run` (an LLM stage's includes its engine's start)."""
    return {name: s["elapsed_s"] for name, s in summary.items() if isinstance(s, dict) and "elapsed_s" in s}


def scores(cfg: RunConfig) -> tuple[list, str]:
    episodes, _ = read_records(cfg.path("eval_episodes"), Episode)
    instructions, _ = read_records(cfg.path("instructions"), Instruction)
    tools, _ = read_records(cfg.path("toolsets"), Tool)
    judged, _ = read_records(cfg.path("eval"), EvalResult)
    judges = sorted({r.judge_model for r in judged if r.judge_model})
    return score_queries(episodes, instructions, tools, judged), ", ".join(judges)


def run_benchmark(cfg: RunConfig, rounds: int = 1, *, chatgpt_answers: str = "if_none_verified",
                  runner: Runner | None = None, base: str | None = None) -> dict[str, Any]:
    """`chatgpt_answers`: when the real ChatGPT DFSDT answers of ANSWERS (those of no held-out tool) join
    a round's training set: `always`, `never`, or `if_none_verified` (only when none of the
    generator's episodes passed verification: train would have no data)."""
    run = runner or _runner()
    started = time.monotonic()
    times: dict[str, dict[str, float]] = {}
    first = round_config(cfg, "round1")
    times["round1"] = stage_times(run(first, chain(["instructions"])) or {})
    answers, answers_left_out = unseen_answers(first) if chatgpt_answers != "never" else ([], [])
    base_model_dir = base or base_model(cfg)
    base_cfg = round_config(cfg, "base", evaluate__solve_with=base_model_dir)
    _share(first, base_cfg)
    times["base"] = stage_times(run(base_cfg, chain(["evaluate"])) or {})
    base_scores, judge = scores(base_cfg)
    results: dict[str, Any] = {"profile_config": cfg.model_dump(mode="json"), "base_model": base_model_dir,
                               "rounds": []}
    generator = None
    for k in range(1, rounds + 1):
        updates: dict[str, Any] = {}
        if generator is not None:  # expert iteration: the last trained model generates and is trained on
            # its tokenizer too: the config's sft.tokenizer named round 1's model (train refuses another's ids)
            updates.update(train__model=generator, sft__tokenizer=generator)
            if cfg.llm.engine == "embedded":
                updates["llm__embedded"] = {**cfg.llm.embedded.model_dump(), "model": generator}
        if chatgpt_answers == "always":
            updates["verify__import_answers"] = answers
        rcfg = round_config(cfg, f"round{k}", **updates)
        _share(first, rcfg)
        round_times = times.setdefault(f"round{k}", {})
        round_times.update(stage_times(run(rcfg, chain(["solve", "verify", "sft_data"])) or {}))
        generated_rows = sft_rows(rcfg)
        if chatgpt_answers == "if_none_verified" and not generated_rows and answers:
            rcfg = round_config(cfg, f"round{k}", **updates, verify__import_answers=answers)
            more = stage_times(run(rcfg, chain(["verify", "sft_data"])) or {})
            round_times.update({f"{name} (ChatGPT answers)": sec for name, sec in more.items()})
        round_times.update(stage_times(run(rcfg, chain(["train", "evaluate"])) or {}))
        trained, judge_k = scores(rcfg)
        rows = compare(base_scores, trained, seed=cfg.seed)
        verify = json.loads(rcfg.path("verify_summary.json").read_text()) if rcfg.path(
            "verify_summary.json").exists() else {}
        results["rounds"].append({"round": k, "generator": generator or base_model_dir, "rows": rows,
                                  "judge": judge_k or judge, "verified": verify.get("dataset", {}).get("verified"),
                                  "sft_rows_generated": generated_rows, "sft_rows": sft_rows(rcfg),
                                  "chatgpt_answers": list(rcfg.verify.import_answers),
                                  "chatgpt_answers_left_out": answers_left_out if rcfg.verify.import_answers else []})
        write_before_after(rcfg.path("report"), rows, judge=judge_k or judge,
                           title=f"round {k}: {generator or base_model_dir} -> {rcfg.path('model')}")
        generator = str(rcfg.path("model"))
    results["stage_seconds"] = times
    results["total_seconds"] = round(time.monotonic() - started, 1)
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.run_dir) / "proof_of_value.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--rounds", type=int, default=1, help="expert iteration: generate -> verify -> train N times")
    p.add_argument("--config", default=str(CONFIG))
    p.add_argument("--chatgpt-answers", choices=["if_none_verified", "always", "never"], default="if_none_verified",
                   help=f"when to also train on the real ChatGPT DFSDT answers in {ANSWERS} (those offering no "
                        "held-out tool; verified like the rest): default only when none of the generator's "
                        "episodes passed verification")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides, after the profile's")
    args = p.parse_args(argv)
    cfg = load_config(args.config, [*PROFILES[args.profile], *args.overrides])
    results = run_benchmark(cfg, args.rounds, chatgpt_answers=args.chatgpt_answers)
    for r in results["rounds"]:
        print(f"\nround {r['round']} (generator {r['generator']}; {r['sft_rows_generated']} SFT rows from its "
              f"verified episodes, {r['sft_rows']} in all)")
        if r["chatgpt_answers"]:
            print(f"trained also on {len(r['chatgpt_answers'])} ChatGPT DFSDT answer files of {ANSWERS} "
                  f"({len(r['chatgpt_answers_left_out'])} left out: they offer a held-out tool)")
        print(table_text(r["rows"], judge=r["judge"]))
    print("\nseconds per stage: " + "; ".join(f"{run} {stage} {sec:.0f}" for run, stages in
                                              results["stage_seconds"].items() for stage, sec in stages.items()))
    print(f"total {results['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
