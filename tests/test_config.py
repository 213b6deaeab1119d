"""config.py: validation messages, JSON round trip, run-folder loading."""
import dataclasses
import json

import pytest

from keras_latent.config import (
    DEFAULT_LAYER_RECON_WEIGHT,
    FORMULATION_FIELDS,
    STATIC_FORMULATION,
    DataConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    resolve_defaults,
    to_dict,
    unresolved_formulation,
    validate,
    with_static_formulation,
)
from keras_latent.errors import UsageError
from keras_latent.runs import layout
from keras_latent.runs.records import load_config, save_config


def test_round_trip_through_json(tmp_path):
    config = TrainConfig(data=DataConfig(dataset="sample", class_names=("a", "b")),
                         model=ModelConfig(num_classes=2, filters=(32, 64, 128), padding="same"), recon_weight=0.5)
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
    (dict(data=DataConfig(class_names=("a", "b"))), "data.class_names names 2 classes but model.num_classes is 10"),
    (dict(batch_split=33), "--batch-split must be between 1 and --batch-size (32), got 33"),
    (dict(batch_split=2, strategy="mirrored"), "--batch-split must be 1 under --strategy mirrored"),
    (dict(inter_op_threads=-2), "--inter-op-threads must be >= 0, got -2"),
    (dict(batch_split=2, jit_compile=True), "--batch-split must be 1 with --jit-compile"),
])
def test_validate_names_field_allowed_values_and_received(change, message):
    with pytest.raises(UsageError) as err:
        validate(dataclasses.replace(TrainConfig(), **change))
    assert message in str(err.value)


def test_load_config_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UsageError, match="not a run folder"):
        load_config(str(tmp_path))
    (tmp_path / layout.CONFIG.name).write_text("{not json")
    with pytest.raises(UsageError, match="config.json is not valid JSON"):
        load_config(str(tmp_path))
    (tmp_path / layout.CONFIG.name).write_text("[1, 2]")
    with pytest.raises(UsageError, match="config.json must hold a JSON object, got list"):
        load_config(str(tmp_path))


def test_defaults_are_made_explicit_before_a_run_saves_them():
    assert resolve_defaults(TrainConfig()).layer_recon_weights == (DEFAULT_LAYER_RECON_WEIGHT,)
    three = TrainConfig(model=ModelConfig(filters=(4, 8, 8), padding="same"))
    assert resolve_defaults(three).layer_recon_weights == (DEFAULT_LAYER_RECON_WEIGHT,) * 2
    assert resolve_defaults(TrainConfig(model=ModelConfig(decoder=False))).layer_recon_weights == ()
    assert resolve_defaults(TrainConfig(layer_recon_weights=(0.5,))).layer_recon_weights == (0.5,)


def test_a_config_json_from_before_layer_decoders_reads_as_the_run_it_was():
    saved = to_dict(TrainConfig(jit_compile=False))
    del saved["model"]["layer_decoders"], saved["layer_recon_weights"]
    for name in ("batch_split", "intra_op_threads", "inter_op_threads", "calibrate", "formulation_source"):
        del saved[name]  # nor the formulation's fields (issue 17): it trained with TensorFlow's threads, unsplit
    old = from_dict(json.loads(json.dumps(saved)))
    assert old.model.layer_decoders is False and old.layer_recon_weights == ()
    assert (old.jit_compile, old.batch_split, old.intra_op_threads, old.inter_op_threads, old.calibrate) == \
        (False, 1, 0, 0, False)
    validate(old)


def _edited(**changes):
    values = json.loads(json.dumps(to_dict(TrainConfig(data=DataConfig(dataset="sample")))))
    for dotted, value in changes.items():
        *parents, name = dotted.split("__")
        target = values
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[name]
        else:
            target[name] = value
    return values


@pytest.mark.parametrize("values,message", [
    (_edited(lr="fast"), "field 'lr' must be a number, got 'fast'"),
    (_edited(epochs=2.5), "field 'epochs' must be an integer, got 2.5"),
    (_edited(jit_compile="yes"), "field 'jit_compile' must be true or false or null, got 'yes'"),
    (_edited(model__filters=[6, "16"]), "field 'model.filters' must be a list of integers, got [6, '16']"),
    (_edited(data__max_train_samples="all"), "field 'data.max_train_samples' must be an integer or null, got 'all'"),
    (_edited(model="tiny"), "field 'model' must be an object with the fields image_size, num_classes"),
    (_edited(epochs=KeyError), "lacks the field 'epochs' (an integer)"),
    (_edited(model__decoder=KeyError), "lacks the field 'model.decoder' (true or false)"),
    (_edited(epochz=3), "has the unknown field 'epochz'; allowed at that level: data, model, ce_weight"),
    (_edited(lr=-1.0), "is not a valid run config: --lr must be > 0, got -1.0"),
    (_edited(optimizer="rmsprop"), "--optimizer must be one of sgd, adam, got 'rmsprop'"),
])
def test_an_edited_config_json_is_one_line_naming_the_field(tmp_path, values, message):
    (tmp_path / layout.CONFIG.name).write_text(json.dumps(values))
    with pytest.raises(UsageError) as err:
        load_config(str(tmp_path))
    text = str(err.value)
    assert text.startswith(f"{tmp_path / layout.CONFIG.name} ") and message in text and "\n" not in text, text
    assert text.endswith(f"rebuild it with: {layout.TRAIN} --out {tmp_path} --overwrite (with the run's other flags: "
                         "it trains again)")


def test_a_config_field_added_later_may_be_missing(monkeypatch, tmp_path):
    """A field of FIELDS_ADDED_LATER missing from config.json takes the value the file means (the runs before it)."""
    from keras_latent import config

    monkeypatch.setattr(config, "FIELDS_ADDED_LATER", {"model.sub_pixel_decoder": False})
    values = _edited(model__sub_pixel_decoder=KeyError)
    assert config.from_dict(values, optional=config.FIELDS_ADDED_LATER).model.sub_pixel_decoder is False
def test_formulation_fields_left_open_take_the_static_values_without_calibration():
    assert unresolved_formulation(TrainConfig()) == FORMULATION_FIELDS
    static = with_static_formulation(TrainConfig(batch_split=2))
    assert (static.jit_compile, static.batch_split, static.intra_op_threads, static.inter_op_threads) == \
        (STATIC_FORMULATION["jit_compile"], 2, 0, 0)
    assert unresolved_formulation(static) == ()
