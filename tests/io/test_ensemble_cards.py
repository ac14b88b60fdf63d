"""Ensemble model strings (A+B, A*2+B): parsed, their members' cards found and checked before any weights load."""

from __future__ import annotations

import pytest

from stemdesk.core.errors import ModelError
from stemdesk.io.ensemble import find_card, find_ensemble, is_ensemble, parse_ensemble
from stemdesk.io.model_store import ModelCard, find_model


def test_a_model_string_names_models_and_their_weights():
    assert parse_ensemble("stemdesk-4stem+htdemucs") == [("stemdesk-4stem", 1.0), ("htdemucs", 1.0)]
    assert parse_ensemble(" a*2 + b*0.5 ") == [("a", 2.0), ("b", 0.5)]
    assert is_ensemble("a+b") and is_ensemble("a*2") and not is_ensemble("stemdesk-4stem")
    for bad, words in (
        ("a++b", "empty model"),
        ("+a", "empty model"),
        ("a*0+b", "more than 0"),
        ("a*-1+b", "more than 0"),
        ("a*two+b", "more than 0"),
        ("a*nan+b", "more than 0"),
        ("a+b+a*2", "appears twice"),
    ):
        with pytest.raises(ModelError, match=words):
            parse_ensemble(bad)


def test_an_ensemble_card_names_its_members_and_writes_the_stems_they_share():
    card = find_ensemble("tiny-4stem*2 + stemdesk-4stem-lite*1")
    assert card.id == "tiny-4stem*2+stemdesk-4stem-lite"  # canonical: spaces and weights of 1 left out
    assert card.sources == ["vocals", "drums", "bass", "other"] and card.describe() == (
        "ensemble of tiny-4stem (weight 2) and stemdesk-4stem-lite"
    )
    identity = card.identity()
    assert identity["id"] == card.id and identity["estimator"] == "ensemble"
    tiny, lite = find_model("tiny-4stem"), find_model("stemdesk-4stem-lite")
    assert identity["members"] == [{**tiny.identity(), "weight": 2.0}, {**lite.identity(), "weight": 1.0}]
    # the hash changes with any member or weight
    assert card.weights_sha256 != find_ensemble("tiny-4stem+stemdesk-4stem-lite").weights_sha256
    assert isinstance(find_card("tiny-4stem"), ModelCard) and find_card("tiny-4stem+stemdesk-4stem-lite").members


def test_members_with_other_stems_or_missing_are_refused_by_name():
    with pytest.raises(ModelError) as error:
        find_ensemble("stemdesk-4stem+stemdesk-2stem")
    message = str(error.value)
    assert "stemdesk-4stem: vocals, drums, bass, other" in message
    assert "stemdesk-2stem: vocals, accompaniment" in message
    assert "accompaniment, bass, drums, other are not made by every one (shared: vocals)" in message
    with pytest.raises(ModelError, match="No model named 'no-such-model'"):
        find_ensemble("tiny-4stem+no-such-model")
    with pytest.raises(ModelError, match="changes nothing"):
        find_ensemble("tiny-4stem*2")
    with pytest.raises(ModelError, match="names an ensemble of models.*this needs one model"):
        find_model("tiny-4stem+stemdesk-4stem")
