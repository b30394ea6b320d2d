"""Record ToolBench's own DFSDT (DFS_woFilter_w2) on scripted model replies, as golden data.

Runs OpenBMB/ToolBench's code from a checkout given on the command line (never copied here):
`toolbench/inference/Algorithms/DFS.py` over `Downstream_tasks/rapidapi.py`'s `rapidapi_wrapper`,
with the settings of `rapidapi.py`'s pipeline (single_chain_max_step=12, width 2, max_query_count=200,
answer=1, with_filter=False, max_observation_length 1024). Only the edges are replaced:

- `openai.ChatCompletion.create` (what `chatgpt_function_model.chat_completion_request` calls) returns
  the script's next reply and keeps the request body it was given;
- `requests.post` to the RapidAPI service returns the script's next observation, shaped as ToolBench's
  server shapes it (`inference/server.py` `get_rapidapi_response`: a tool input that is not JSON gives
  `{"error": "Tool input parse error...\\n", "response": ""}`, "" counts as `{}`; the response text is
  cut at 2048 characters);
- the LLM modules for local models (torch / peft / sentence-transformers models) are empty stand-ins:
  rapidapi.py imports them, DFSDT with ChatGPT never uses them.

Usage (PYTHONPATH must give termcolor and tenacity; torch and transformers for toolbench.utils):
    python scripts/reference/record_toolbench_dfsdt.py --toolbench /tmp/ref/toolbench \
        --data tests/data/reference/toolbench --random 120 --seed 13
writes `<data>/dfsdt_golden.json.gz` (and, with --answers-out DIR, ToolBench's answer files of the runs
with valid_data, for record_toolbench_preprocess.py).
"""
from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import json
import random
import sys
import types
from pathlib import Path

FIRST_THOUGHT = "I should call a function to get the information."


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def normalize_messages(messages: list[dict]) -> list[dict]:
    """The request's messages in ToolBench's function-calling shape, without bookkeeping keys."""
    out = []
    for m in messages:
        n = {"role": m["role"], "content": m.get("content")}
        if m.get("function_call"):
            n["function_call"] = {"name": m["function_call"]["name"], "arguments": m["function_call"]["arguments"]}
        if m["role"] == "function":
            n["name"] = m["name"]
        out.append(n)
    return out


def install_stand_ins(state: dict) -> None:
    openai = types.ModuleType("openai")

    class ChatCompletion:
        @staticmethod
        def create(**body):
            state["requests"].append(copy.deepcopy(body))
            if not state["replies"]:
                raise RuntimeError("script ran out of replies")
            reply = state["replies"].pop(0)
            return json.dumps({"choices": [{"message": copy.deepcopy(reply)}], "usage": {"total_tokens": 0}})

    openai.ChatCompletion = ChatCompletion
    openai.api_key = ""
    sys.modules["openai"] = openai
    for name, classes in {"davinci_model": ["Davinci"], "tool_llama_lora_model": ["ToolLLaMALoRA"],
                          "tool_llama_model": ["ToolLLaMA"], "retriever": ["ToolRetriever"]}.items():
        mod = types.ModuleType(f"toolbench.inference.LLM.{name}")
        for c in classes:
            setattr(mod, c, type(c, (), {}))
        sys.modules[mod.__name__] = mod


class FakeResponse:
    status_code = 200

    def __init__(self, body: dict):
        self.body = body

    def json(self):
        return self.body


def server_post(state: dict):
    def post(url, json=None, headers=None, timeout=None):  # noqa: A002 - requests' own keyword
        import json as js
        tool_input = json["tool_input"]
        state["executed"].append([json["api_name"], tool_input])
        try:
            js.loads(tool_input)
        except Exception:
            if tool_input != "":
                return FakeResponse({"error": "Tool input parse error...\n", "response": ""})
        error, response = state["observations"].pop(0)
        return FakeResponse({"error": error, "response": str(response)[:2048]})
    return post


# --- scripts ---------------------------------------------------------------------------------

def call(name: str, arguments: str, content: str | None) -> dict:
    return {"role": "assistant", "content": content, "function_call": {"name": name, "arguments": arguments}}


def finish(kind: str, answer: str | None = None, content: str | None = None) -> dict:
    args = {"return_type": kind} if answer is None else {"return_type": kind, "final_answer": answer}
    return call("Finish", json.dumps(args), content)


def random_reply(rng: random.Random, names: list[str], i: int, finishing: bool) -> dict:
    thought = rng.choice([None, None, f"Thought {i}: let me try something.", "", "Ünïcode thought ✓"])
    name = rng.choice(names)
    r = rng.random()
    if r < 0.60:
        arg = {"q": f"value {rng.randint(0, 9)}"} if rng.random() < 0.8 else {}
        return call(name, json.dumps(arg), thought)
    if r < 0.67:
        return {"role": "assistant", "content": thought or f"Only thinking, step {i}."}
    if r < 0.71:
        return call("made_up_function", "{}", thought)
    if r < 0.74:
        return call(f"functions.{name}", '{"q": "x"}', thought)
    if r < 0.77:
        return call(name, '{"q": "unterminated', thought)
    if r < 0.80:
        return call(name[-20:], "{}", thought)  # a name's tail: ToolBench matches by endswith
    if r < 0.895 and not finishing:  # scripts that never finish run the tree out
        return call(name, json.dumps({"q": f"again {i}"}), thought)
    if r < 0.84:
        return finish("give_up_and_restart", content=thought)
    if r < 0.86:
        return finish("give_answer", content=thought)  # no final_answer
    if r < 0.87:
        return call("Finish", '{"return_type": "nonsense"}', thought)
    if r < 0.88:
        return call("Finish", 'not json "return_type": "give_up_and_restart", more', thought)
    if r < 0.895:
        return finish("give_answer", f"The answer is {i}.", thought)
    return call(name, json.dumps({"q": "ß" * rng.randint(1, 3)}, ensure_ascii=rng.random() < 0.5), thought)


def random_observations(rng: random.Random, n: int) -> list[list[str]]:
    out = []
    for i in range(n):
        length = rng.choice([5, 40, 300, 1030, 2100])
        text = (f"obs{i} " + "".join(rng.choice("abcdé {}:\"'\n") for _ in range(length)))[:length]
        error = rng.choice(["", "", "", "", "API not working error...", "Message error...", "Unsubscribed error..."])
        out.append([error, text])
    return out


def scripts(functions: dict[int, list[str]], n_random: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    first_query = min(functions)
    f0 = functions[first_query][0]
    named = [
        {"name": "always_call_with_thought", "query": first_query,
         "replies": [call(f0, "{}", FIRST_THOUGHT)] * 200},
        {"name": "always_call_no_thought", "query": first_query, "replies": [call(f0, "{}", None)] * 200},
        {"name": "thought_turns_give_up_then_answer", "query": first_query,
         "replies": [{"role": "assistant", "content": "Let me think first."}, call(f0, '{"q": "a"}', "Try it."),
                     finish("give_up_and_restart", content="It failed."), call(f0, '{"q": "b"}', None),
                     {"role": "assistant", "content": "Still thinking."}, call(f0, '{"q": "c"}', "Again."),
                     finish("give_answer", "The answer is 42.", "Done.")] + [call(f0, "{}", None)] * 50},
    ]
    for s in named:
        s["observations"] = [["", f"result {i} of {f0}"] for i in range(200)]
    out = list(named)
    qids = sorted(functions)
    for k in range(n_random):
        q = qids[k % len(qids)]
        out.append({"name": f"random_{k}", "query": q,
                    "replies": [random_reply(rng, functions[q], i, k % 6 != 5) for i in range(200)],
                    "observations": random_observations(rng, 200)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolbench", required=True, help="ToolBench checkout (its repo root)")
    ap.add_argument("--data", required=True, help="folder with queries.json and toolenv/")
    ap.add_argument("--random", type=int, default=120)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--answers-out", help="also write ToolBench's answer files of the valid runs here")
    args = ap.parse_args()
    root = Path(args.toolbench).resolve()
    sys.path[:0] = [str(root), str(root / "toolbench" / "inference")]
    state: dict = {"requests": [], "replies": [], "observations": [], "executed": []}
    install_stand_ins(state)
    import toolbench.inference.Downstream_tasks.rapidapi as rapidapi
    from Algorithms.DFS import DFS_tree_search
    from toolbench.inference.LLM.chatgpt_function_model import ChatGPTFunction
    rapidapi.requests.post = server_post(state)
    rapidapi.time.sleep = lambda s: None

    data = Path(args.data)
    toolenv = data / "toolenv"
    queries = json.loads((data / "queries.json").read_text())
    white = rapidapi.get_white_list(str(toolenv))
    envargs = argparse.Namespace(tool_root_dir=str(toolenv), toolbench_key="", rapidapi_key="",
                                 use_rapidapi_key=False, api_customization=False,
                                 max_observation_length=1024, observ_compress_method="truncate")

    def make_env(q):
        names = [rapidapi.standardize(a["tool_name"]) for a in q["api_list"]]
        des = [[c["standard_tool_name"], c["description"]] for c in rapidapi.contain(names, white)]
        return rapidapi.rapidapi_wrapper(q, des, None, envargs)

    by_id = {q["query_id"]: q for q in queries}
    functions = {qid: [f["name"] for f in make_env(q).functions if f["name"] != "Finish"] for qid, q in by_id.items()}
    first_requests = {}
    results = []
    for s in scripts(functions, args.random, args.seed):
        state.update(requests=[], replies=copy.deepcopy(s["replies"]), observations=copy.deepcopy(s["observations"]),
                     executed=[])
        env = make_env(by_id[s["query"]])
        chain = DFS_tree_search(llm=ChatGPTFunction(model="gpt-3.5-turbo-16k-0613", openai_key=""), io_func=env)
        chain.start(single_chain_max_step=12, tree_beam_size=2, max_query_count=200, answer=1, with_filter=False)
        random.seed(0)  # to_json picks the kept give-up with random.randint: seeded per script
        answer = chain.to_json(answer=True, process=False)["answer_generation"]
        answer["query"] = env.input_description
        if args.answers_out and answer["valid_data"]:
            Path(args.answers_out).mkdir(parents=True, exist_ok=True)
            (Path(args.answers_out) / f"{s['name']}_DFS_woFilter_w2.json").write_text(
                json.dumps({"answer_generation": answer}, indent=2))
        reqs = state["requests"]
        if s["query"] not in first_requests:
            first_requests[s["query"]] = {"messages": normalize_messages(reqs[0]["messages"]),
                                          "functions": reqs[0]["functions"]}
        settings = sorted({json.dumps({k: v for k, v in r.items() if k not in ("messages", "functions")},
                                      sort_keys=True) for r in reqs})
        used = {"replies": s["replies"][:len(reqs)], "observations": s["observations"][:len(s["observations"]) - len(state["observations"])]}
        result = {**s, **used, "requests": len(reqs),
                  "request_digests": [digest(normalize_messages(r["messages"])) for r in reqs],
                  "functions_digest": sorted({digest(r["functions"]) for r in reqs}),
                  "request_settings": [json.loads(x) for x in settings],
                  "executed": state["executed"],
                  "valid_data": answer["valid_data"], "finish_type": answer["finish_type"],
                  "final_answer": answer["final_answer"], "query_count": answer["query_count"],
                  "train_messages_digest": digest(answer.get("train_messages")),
                  }
        if not s["name"].startswith("random_"):
            result["train_messages"] = answer.get("train_messages")
        if s["name"] == "thought_turns_give_up_then_answer":
            result["request_messages"] = [normalize_messages(r["messages"]) for r in reqs]
        results.append(result)
        print(f"{s['name']}: {len(reqs)} requests, valid_data={answer['valid_data']}", file=sys.stderr)
    commit = (root / ".commit").read_text().strip() if (root / ".commit").exists() else ""
    out = {"source": {"repo": "OpenBMB/ToolBench", "commit": commit,
                      "files": ["toolbench/inference/Algorithms/DFS.py", "toolbench/inference/Tree/Tree.py",
                                "toolbench/inference/Downstream_tasks/rapidapi.py",
                                "toolbench/inference/LLM/chatgpt_function_model.py"],
                      "settings": {"single_chain_max_step": 12, "tree_beam_size": 2, "max_query_count": 200,
                                   "answer": 1, "with_filter": False, "max_observation_length": 1024}},
           "first_requests": {str(k): v for k, v in first_requests.items()}, "scripts": results}
    with gzip.open(data / "dfsdt_golden.json.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps(out, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
