"""lab/default_models.py, the script that trains the models StemDesk ships: how it composes and carries over their cards, what a continued
run starts from, and the options it checks before any song is loaded. (Moved from tests/training/test_training.py.)"""

from __future__ import annotations

import pytest
import torch

from stemdesk.core.estimators import build_estimator
from stemdesk.io.model_store import load_estimator, read_card
from stemdesk.training.train import (
    TrainConfig,
)

SOURCES = ("vocals", "drums", "bass", "other")


def test_a_composed_cascade_card_keeps_the_fine_tuning_advice_and_names_its_second_stage(tmp_path):
    import json

    from lab.default_models import compose_card

    lite = {
        "weights_sha256": "new",
        "metrics": {"step": 1200},
        "training": {"config": {"lr": 5e-4}},
        "training_data": {"synthetic": "60 random songs"},
        "licenses": {"fluidr3-gm": "MIT"},
    }
    old = {
        "fine_tune": {"lr": 5e-5, "freeze": [], "why": "measured"},
        "training": {
            "fine_tuning": {"decision": "the untuned cascade ships"},
            "second_stage": {"weights_sha256": "old"},
        },
    }
    for name, card in (("stemdesk-4stem-lite", lite), ("stemdesk-4stem", old)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text(json.dumps(card))
    card = {"training_data": {}, "licenses": {"weights": "GPL"}, "training": {}}
    compose_card(card, tmp_path)
    assert card["fine_tune"] == old["fine_tune"]
    assert "step 1200" in card["description"]
    assert card["training"]["second_stage"]["weights_sha256"] == "new"
    assert card["training"]["fine_tuning"]["note"] == "measured with an earlier second stage"
    assert card["training_data"]["synthetic"] == "60 random songs" and card["licenses"]["fluidr3-gm"] == "MIT"
    # composed again from the same second stage: the note is not added again
    old["training"]["second_stage"]["weights_sha256"] = "new"
    old["training"]["fine_tuning"].pop("note", None)
    (tmp_path / "stemdesk-4stem" / "card.json").write_text(json.dumps(old))
    again = {"training_data": {}, "licenses": {}, "training": {}}
    compose_card(again, tmp_path)
    assert "note" not in again["training"]["fine_tuning"]
    # a card from before cards named their second stage: nothing to say it changed
    del old["training"]["second_stage"]
    (tmp_path / "stemdesk-4stem" / "card.json").write_text(json.dumps(old))
    compose_card(again, tmp_path)
    assert "note" not in again["training"]["fine_tuning"]


def test_a_continued_cascade_keeps_its_cards_history_and_says_what_its_second_stage_hears():
    from lab.default_models import CASCADE, carry_over

    before = {
        "parents": ["spleeter-2stem (vocal U-Net)", "stemdesk-4stem-lite"],
        "fine_tune": {"lr": 5e-5, "freeze": [], "why": "measured"},
        "licenses": {"spleeter": "MIT", "weights": "old text; personal and research use only (a teacher)"},
        "training_data": {
            "spleeter": "25,000 songs",
            "train_songs": ["old"],
            "research_only": "MUSDB18; and a teacher: personal and research use only",
        },
        "training": {
            "fine_tuning": {"decision": "untuned ships"},
            "second_stage": {"weights_sha256": "lite"},
            "config": {"lr": 1e-4},
        },
    }
    config = TrainConfig(estimator="cascade", config={**CASCADE, "second_input": "rest"}, freeze=("first.",))
    card = {
        "licenses": {"weights": "GPL"},
        "training_data": {"train_songs": ["new"], "research_only": "MUSDB18"},
        "training": {"config": {"lr": 5e-4}},
    }
    carry_over(card, before, config)
    assert card["parents"] == before["parents"] and card["fine_tune"] == before["fine_tune"]
    # this run's text wins, but a run without the teacher does not lift the restriction its labels put on the weights
    assert card["licenses"] == {"spleeter": "MIT", "weights": "GPL; personal and research use only (a teacher)"}
    assert card["training_data"] == {
        "train_songs": ["new"],
        "spleeter": "25,000 songs",
        "research_only": "MUSDB18; and a teacher: personal and research use only",
    }
    assert card["training"]["fine_tuning"] == {"decision": "untuned ships", "note": "measured with earlier weights"}
    assert card["training"]["second_stage"] == {"weights_sha256": "lite"}
    assert card["training"]["config"] == {"lr": 5e-4}
    assert "hearing the rest" in card["description"] and "U-Net frozen" in card["description"]
    plain = {"licenses": {}, "training_data": {}, "training": {}}
    carry_over(plain, {}, TrainConfig(estimator="cascade", config=CASCADE))
    assert "hearing the mixture" in plain["description"] and "frozen" not in plain["description"]
    assert "fine_tune" not in plain and "parents" not in plain


def test_a_continued_model_starts_as_the_shipped_model_not_the_recipes_architecture():
    """--continue-from once built the cascade from the recipe (its second stage hearing the mixture) and loaded the
    shipped weights, trained with the second stage hearing the rest, into it: a different model, scored below the
    shipped one, with its vocal U-Net no longer fixed. The shipped model's second stage now also carries a band-split
    correction the recipe does not have."""
    import copy

    from helpers import shipped_default_plain

    from lab.default_models import RECIPES, ROOT, inherit
    from stemdesk.core.estimators import build_estimator

    folder = ROOT / "models" / "stemdesk-4stem"
    shipped, card = load_estimator(read_card(folder))
    config = copy.deepcopy(RECIPES["stemdesk-4stem"])
    inherit(config, card.raw)
    assert config.freeze == tuple(card.raw["training"]["config"]["freeze"])
    continued = build_estimator(config.estimator, config.config)
    continued.load_state_dict(shipped.state_dict())
    continued.eval()
    mag = torch.rand(1, 2, 2049, 40, generator=torch.Generator().manual_seed(0))
    _, plain, _ = shipped_default_plain()
    with torch.no_grad():
        assert torch.allclose(continued(mag), shipped(mag), atol=1e-6)
        recipe = build_estimator("cascade", RECIPES["stemdesk-4stem"].config)
        with pytest.raises(RuntimeError, match="Unexpected key"):
            recipe.load_state_dict(shipped.state_dict())
        recipe.load_state_dict(plain.state_dict())  # the trained stages without the correction
        recipe.eval()
        assert not torch.allclose(recipe(mag), plain(mag), atol=1e-3)  # what the old code trained


def test_a_second_stage_of_another_size_trains_from_scratch_behind_the_fixed_vocal_unet():
    import copy

    from lab.default_models import CASCADE, RECIPES, second_stage_from_scratch

    config = copy.deepcopy(RECIPES["stemdesk-4stem"])
    assert not second_stage_from_scratch(config, 128, 2)  # the lite's size: the recipe as it was
    assert config.config == CASCADE and config.early_stop == RECIPES["stemdesk-4stem"].early_stop
    assert second_stage_from_scratch(config, 32, 1)
    assert config.config["second"]["config"]["hidden"] == 32 and config.config["second"]["config"]["layers"] == 1
    assert config.config["second_input"] == "rest" and config.freeze == ("first.",)
    assert config.lr == RECIPES["stemdesk-4stem-lite"].lr and not config.beat_start and config.early_stop == 0
    cascade = build_estimator(config.estimator, config.config)
    assert cascade.second.trunk.num_layers == 1 and cascade.second.fc1.out_features == 32


def test_the_early_stop_option_is_checked_before_any_song_is_loaded(capsys):
    from lab.default_models import main

    with pytest.raises(SystemExit):
        main(["stemdesk-4stem", "--early-stop", "-1"])
    assert "--early-stop counts validations" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has the GPU the test asks for")
def test_a_gpu_this_machine_lacks_is_said_before_any_song_is_loaded(capsys, monkeypatch):
    from lab import default_models

    monkeypatch.setattr(default_models, "load_songs", lambda *_: pytest.fail("songs were loaded first"))
    with pytest.raises(SystemExit):
        default_models.main(["stemdesk-4stem", "--device", "cuda"])
    assert "--device: CUDA was requested but this machine has no CUDA GPU" in capsys.readouterr().err
