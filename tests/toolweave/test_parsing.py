import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolweave.parsing import parse_arguments, parse_executor_reply, parse_react


# --- ReAct ------------------------------------------------------------------------------------

def test_clean_react():
    s = parse_react('Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}')
    assert (s.thought, s.action, s.arguments, s.error) == ("I need the weather.", "get_weather", {"city": "Paris"}, None)
    assert s.action_input == '{"city": "Paris"}' and not s.is_final


def test_missing_thought_extra_text_after_action_and_trailing_text():
    s = parse_react('Action: get_weather to look it up\nAction Input: {"city": "Rome"} and then I will answer')
    assert s.thought == "" and s.action == "get_weather" and s.arguments == {"city": "Rome"}


def test_python_dict_fenced_code_and_kwargs():
    s = parse_react("Thought: x\nAction: search\nAction Input: {'q': 'cats', 'limit': 3, 'safe': True}")
    assert s.arguments == {"q": "cats", "limit": 3, "safe": True}
    s = parse_react('Action: search\nAction Input:\n```json\n{"q": "dogs"}\n```')
    assert s.arguments == {"q": "dogs"}
    s = parse_react("Action: search(q='owls', limit=2)")
    assert s.action == "search" and s.arguments == {"q": "owls", "limit": 2}
    s = parse_react("ASSISTANT Thought: t\nASSISTANT Action: `search`\nASSISTANT Action Input: {\"q\": 1}")
    assert s.action == "search" and s.arguments == {"q": 1}


def test_broken_json_is_repaired_or_reported():
    assert parse_react('Action: f\nAction Input: {"a": 1, "b": "x"').arguments == {"a": 1, "b": "x"}
    s = parse_react("Action: f\nAction Input: the city of Paris")
    assert s.action == "f" and s.arguments is None and "Action Input of f" in s.error


def test_first_action_wins_and_hallucinated_observation_is_cut():
    text = ('Thought: a\nAction: first\nAction Input: {"n": 1}\nObservation: {"fake": true}\n'
            'Thought: b\nAction: second\nAction Input: {"n": 2}\nFinal Answer: made up')
    s = parse_react(text)
    assert (s.action, s.arguments, s.final_answer) == ("first", {"n": 1}, None)
    s = parse_react('Action: one\nAction Input: {}\nAction: two\nAction Input: {"x": 1}')
    assert (s.action, s.arguments) == ("one", {})


def test_final_answer():
    s = parse_react("Thought: I know it.\nFinal Answer: It is 42.")
    assert s.is_final and s.final_answer == "It is 42." and s.error is None
    s = parse_react("Final Answer: done\nAction: late\nAction Input: {}")
    assert s.is_final and s.action is None


def test_nothing_and_endless_text():
    assert parse_react("").error == "empty reply"
    assert parse_react(None).error
    s = parse_react("I am a small model and I like talking. " * 5000)
    assert s.action is None and s.final_answer is None and s.error
    s = parse_react("Action: f\nAction Input: {}" + " blah" * 50000)
    assert s.action == "f" and s.arguments == {}


# --- arguments --------------------------------------------------------------------------------

def test_arguments():
    assert parse_arguments(None) == ({}, None)
    assert parse_arguments("") == ({}, None)
    assert parse_arguments({"a": 1}) == ({"a": 1}, None)
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments(json.dumps('{"a": 1}')) == ({"a": 1}, None)  # double-encoded
    args, err = parse_arguments("[1, 2]")
    assert args is None and "list" in err
    args, err = parse_arguments("hello")
    assert args is None and "not a JSON object" in err
    args, err = parse_arguments(42)  # type: ignore[arg-type]
    assert args is None and "int" in err


# --- executor reply ---------------------------------------------------------------------------

def test_executor_reply():
    assert parse_executor_reply('{"status_code": 200, "body": {"temp": 21}}') == (200, '{"temp": 21}', None)
    assert parse_executor_reply('{"status_code": 404, "body": "not found"}') == (404, "not found", None)
    assert parse_executor_reply('Status Code: 201. Response: {"id": 7}') == (201, '{"id": 7}', None)
    code, body, err = parse_executor_reply("I cannot do that")
    assert code == 500 and err
    assert parse_executor_reply('{"status_code": 999, "body": 1}')[0] == 500
    assert parse_executor_reply('{"status_code": "abc", "body": 1}')[2]
    assert parse_executor_reply("")[2] == "empty executor reply"


# --- property: no exception escapes any parser --------------------------------------------------

FRAGMENTS = st.sampled_from([
    "Thought:", "Action:", "Action Input:", "Final Answer:", "Observation:", "ASSISTANT Action:",
    "{", "}", "[", "]", '"', "'", ":", ",", "```json\n", "```", "\n", "null", "True", "None", "(", ")",
    '{"a": ', '{"status_code": ', '"body": ', "Status Code: 200", "Response:", "=", "\\", "\\u12",
    "unknown_function", "get_weather_for_weather", '{"city": "Paris"}', "{'q': 1}", "1e999", "NaN",
])
MESSY = st.lists(st.one_of(FRAGMENTS, st.text(max_size=40)), max_size=40).map("".join)
LONG = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=20), st.integers(1, 3000))
ANY_TEXT = st.one_of(MESSY, st.text(), LONG, st.just(""))
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                       max_leaves=10)
FAST = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


@settings(max_examples=4000, **FAST)
@given(ANY_TEXT)
def test_react_never_raises(text):
    s = parse_react(text)
    assert s.action is not None or s.final_answer is not None or s.error
    if s.action is not None:
        assert (s.arguments is None) == bool(s.error and "Action Input" in s.error)


@settings(max_examples=3500, **FAST)
@given(st.one_of(ANY_TEXT, JSONISH, JSONISH.map(json.dumps), JSONISH.map(lambda v: json.dumps(v)[:-1])))
def test_arguments_never_raise(raw):
    args, err = parse_arguments(raw)
    assert (args is None) != (err is None)
    assert args is None or isinstance(args, dict)


@settings(max_examples=2600, **FAST)
@given(st.one_of(ANY_TEXT, JSONISH.map(lambda v: json.dumps({"status_code": v, "body": v})),
                 st.dictionaries(st.sampled_from(["status_code", "body", "response"]), JSONISH)))
def test_executor_reply_never_raises(text):
    code, body, err = parse_executor_reply(text)
    assert 100 <= code <= 599 and isinstance(body, str)


def test_executor_reply_with_infinite_status_is_an_error_not_a_crash():
    # found by the property test: json.loads reads Infinity as a float that int() cannot take
    code, body, err = parse_executor_reply('{"status_code": Infinity, "body": {}}')
    assert code == 500 and err and "not a number" in err


def test_parser_work_is_bounded_on_pathological_replies():
    import time

    for text in ('{"' * 4000, "Action: f\nAction Input: " + '{"' * 4000, "Action Input: " + "[" * 20000,
                 '{"a": "' + '"' * 1990):
        start = time.process_time()
        parse_react(text)
        parse_arguments(text)
        parse_executor_reply(text)
        assert time.process_time() - start < 0.1, text[:40]


def test_arguments_that_are_no_json_are_an_error():
    args, err = parse_arguments("{'ids': {1, 2}}")
    assert args is None and "JSON-representable" in err
    assert parse_arguments({"b": b"x"})[0] is None
    assert parse_arguments("{'t': (1, 2)}") == ({"t": [1, 2]}, None)  # a tuple is a list in JSON
