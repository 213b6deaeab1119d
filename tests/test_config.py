"""config.py: validation messages, JSON round trip, run-folder loading."""
import dataclasses
import json

import pytest

from keras_latent.config import (
    DEFAULT_LAYER_RECON_WEIGHT,
    DataConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    resolve_defaults,
    to_dict,
    validate,
)
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.runs.records import load_config, save_config


def test_round_trip_through_json(tmp_path):
    config = TrainConfig(data=DataConfig(dataset="sample", class_names=("a", "b")),
                         model=ModelConfig(filters=(32, 64, 128), padding="same"), recon_weight=0.5)
    save_config(config, str(tmp_path))
    assert load_config(str(tmp_path)) == config
    assert from_dict(json.loads(json.dumps(to_dict(config)))) == config


@pytest.mark.parametrize("change,message", [
    (dict(epochs=-1), "--epochs must be >= 1, got -1"),
    (dict(batch_size=0), "--batch-size must be >= 1, got 0"),
    (dict(recon_weight=-1.0), "--recon-weight must be >= 0, got -1.0"),
    (dict(optimizer="rmsprop"), "--optimizer must be one of sgd, adam, got 'rmsprop'"),
    (dict(model=ModelConfig(filters=(0,))), "--filters must be positive integers, got 0"),
    (dict(model=ModelConfig(filters=())), "--filters must be positive integers, got nothing"),
    (dict(model=ModelConfig(padding="full")), "--padding must be one of valid, same, got 'full'"),
    (dict(data=DataConfig(test_fraction=1.5)), "--test-fraction must be between 0 and 1, got 1.5"),
    (dict(ce_weight=0.0, recon_weight=0.0), "at least one loss weight"),
    (dict(layer_recon_weights=(1.0, 1.0)), "--layer-recon-weights must be 1 number(s) >= 0, one per block conv1 .. "
                                           "conv1 (the trunk has 2 blocks"),
    (dict(layer_recon_weights=(-1.0,)), "got -1"),
    (dict(model=ModelConfig(layer_decoders=False), layer_recon_weights=(1.0,)), "must be 0 number(s)"),
    (dict(seed=-1), "--seed must be >= 0, got -1"),
    (dict(data=DataConfig(split_seed=-2)), "--split-seed must be >= 0, got -2"),
])
def test_validate_names_field_allowed_values_and_received(change, message):
    with pytest.raises(UsageError) as err:
        validate(dataclasses.replace(TrainConfig(), **change))
    assert message in str(err.value)


def test_load_config_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UsageError, match="not a run folder"):
        load_config(str(tmp_path))
    (tmp_path / layout.CONFIG.name).write_text("{not json")
    with pytest.raises(UsageError, match="not a valid run config"):
        load_config(str(tmp_path))
    (tmp_path / layout.CONFIG.name).write_text('{"epochz": 3}')
    with pytest.raises(UsageError, match="unknown config keys"):
        load_config(str(tmp_path))


def test_defaults_are_made_explicit_before_a_run_saves_them():
    assert resolve_defaults(TrainConfig()).layer_recon_weights == (DEFAULT_LAYER_RECON_WEIGHT,)
    three = TrainConfig(model=ModelConfig(filters=(4, 8, 8), padding="same"))
    assert resolve_defaults(three).layer_recon_weights == (DEFAULT_LAYER_RECON_WEIGHT,) * 2
    assert resolve_defaults(TrainConfig(model=ModelConfig(decoder=False))).layer_recon_weights == ()
    assert resolve_defaults(TrainConfig(layer_recon_weights=(0.5,))).layer_recon_weights == (0.5,)


def test_a_config_json_from_before_layer_decoders_reads_as_the_run_it_was():
    saved = to_dict(TrainConfig())
    del saved["model"]["layer_decoders"], saved["layer_recon_weights"]
    old = from_dict(json.loads(json.dumps(saved)))
    assert old.model.layer_decoders is False and old.layer_recon_weights == ()
    validate(old)
