"""The hot path's own query parsing and JSON: what FastAPI/Starlette would have given."""

import json

import numpy as np
import pytest
from starlette.requests import Request

from avrec.serve.app import RECOMMEND_PARAMS, _Bad, _dumps, _parse


def _req(qs: bytes) -> Request:
    return Request({"type": "http", "query_string": qs, "headers": []})


def test_query_parse_matches_starlette():
    qs = b"user=%C3%A9l%C3%A8ve+1&k=5&filter=tag%3Dsurf&filter=duration%3C600&explain=YES"
    got = _parse(_req(qs), RECOMMEND_PARAMS, 1000)
    qp = _req(qs).query_params
    assert got["user"] == qp["user"] == "élève 1"
    assert got["k"] == int(qp["k"]) == 5
    assert got["filter"] == qp.getlist("filter") == ["tag=surf", "duration<600"]
    assert got["explain"] is True


@pytest.mark.parametrize("qs, needle", [
    (b"user=u1&user=u2", "user: given 2 times"),  # behind a proxy, parameter pollution: refused
    (b"user=u1&k=3&k=5", "k: given 2 times"),
    (b"user=u%00x", "user: contains a NUL byte"),
    (b"user=u%0Ax", "user: contains a newline"),
])
def test_query_parse_refuses_what_no_id_or_value_can_be(qs, needle):
    with pytest.raises(_Bad, match=needle):
        _parse(_req(qs), RECOMMEND_PARAMS, 1000)


def test_json_is_compact_utf8_and_valid():
    body = {"user": "é", "items": [{"score": np.float32(0.25), "n": np.int64(3), "bad": float("nan")}]}
    out = _dumps(body)
    assert json.loads(out) == {"user": "é", "items": [{"score": 0.25, "n": 3, "bad": None}]}
    assert "é".encode() in out and b" " not in out
    assert json.loads(_dumps({"big": 2 ** 70, 1: "x"})) == {"big": 2 ** 70, "1": "x"}  # orjson refuses: json writes it


def test_recommender_messages_name_parameters_not_flags():
    from avrec.serve.app import http_words

    assert http_words("unknown --filter field 'x'; choose another --modality, or --fallback popular") == \
        "unknown filter field 'x'; choose another modality, or fallback=popular"
    assert http_words("--k must be at least 1; pass --history FILE") == \
        "k must be at least 1; pass POST /recommend with a history"
