"""Bad configurations fail before training, with a message that names the problem."""

from __future__ import annotations

import pytest

from zoo.train import ConfigError, run

from .conftest import tiny


def _fails(config, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run(config)
    if config.resume is None:
        assert not config.out.exists(), "nothing may be written before the configuration is checked"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"recipe": "test-engine-tiyn"}, r"unknown recipe 'test-engine-tiyn'; closest: test-engine-tiny"),
        ({"overrides": ["lrr=0.1"]}, r"unknown recipe field 'lrr' \(did you mean lr\?\)"),
        ({"overrides": ["lr=fast"]}, r"recipe field 'lr' expects float, got 'fast'"),
        ({"overrides": ["lr"]}, r"not of the form key=value"),
        ({"overrides": ["modle.hidden=4"]}, r"unknown prefix 'modle\.'"),
        ({"model": "test-engine-mpl"}, r"unknown model 'test-engine-mpl'; closest: test-engine-mlp"),
        ({"overrides": ["model.hiden=4"]}, r"unknown option 'hiden' \(did you mean hidden\?\)"),
        ({"overrides": ["model.hidden=2.5"]}, r"test-engine-mlp: option 'hidden' expects int, got 2.5"),
        (
            {"overrides": ["data.scael=2"]},
            r"dataset 'test-engine-blobs': unknown option 'scael' \(did you mean scale\?\); "
            r"valid options: broken_index, delay_s, scale",
        ),
        ({"overrides": ["data.scale=big"]}, r"dataset 'test-engine-blobs': option 'scale' expects float, got 'big'"),
        ({"overrides": ["loss.label_smoothing=abc"]}, r"loss 'cross_entropy': option 'label_smoothing' expects float"),
        ({"overrides": ["dataset=imagenet"]}, r"unknown dataset 'imagenet'"),
        ({"overrides": ["loss=focal"]}, r"unknown loss 'focal'"),
        ({"overrides": ["loss.smoothing=0.1"]}, r"loss 'cross_entropy'.*valid options: label_smoothing"),
        ({"overrides": ["metrics=accuracy,top7"]}, r"unknown metric 'top7'; closest: top5"),
        ({"overrides": ["selection_metric=f1"]}, r"selection_metric 'f1' must be 'loss' or one of"),
        ({"overrides": ["optimizer=adan"]}, r"optimizer must be one of \('adam', 'adamw', 'sgd'\), got 'adan'"),
        ({"overrides": ["optim.momentun=0.9"]}, r"optimizer 'adamw' with options \{'momentun': 0.9\}"),
        ({"overrides": ["warmup_epochs=3"]}, r"warmup_epochs must be in \[0, epochs=3\)"),
        ({"overrides": ["batch_size=100"]}, r"batch_size 100 is larger than the training set \(64 samples"),
        ({"overrides": ["init_checkpoint='missing.pt'"]}, r"init_checkpoint 'missing.pt' does not exist"),
        ({"data": "/no/such/root"}, r"dataset root '/no/such/root' does not exist"),
        ({"device": "tpu"}, r"unknown device 'tpu'"),
        ({"resume": "missing.pt"}, r"checkpoint 'missing.pt' does not exist"),
    ],
)
def test_bad_configuration_is_reported_before_training(make_config, changes, match):
    _fails(make_config(**changes), match)


def test_missing_split_file_names_split_and_file(make_config, data_root):
    (data_root / "val.pt").unlink()
    _fails(make_config(), r"split 'val' under .*missing file .*val\.pt")


def test_resume_from_another_model_or_recipe_is_refused(make_config):
    run(make_config(epochs=2, stop_after_epochs=1))
    _fails(make_config(epochs=2, resume="auto", model=tiny.OTHER_MODEL), r"holds model 'test-engine-mlp'")
    _fails(make_config(epochs=2, resume="auto", overrides=["model.hidden=8"]), r"model config differs \(hidden")
    _fails(make_config(epochs=2, resume="auto", overrides=["lr=0.1"]), r"recipe differs \(lr: 0.02 -> 0.1\)")
    _fails(make_config(epochs=2, resume="auto", seed=1), r"trained with seed 0, not 1")


def test_existing_run_directory_needs_resume(make_config):
    run(make_config(epochs=2, stop_after_epochs=1))
    with pytest.raises(ConfigError, match=r"already holds last.pt .* --resume auto"):
        run(make_config(epochs=2))


def test_init_checkpoint_of_another_model_is_refused(make_config):
    source = run(make_config("linear", model=tiny.OTHER_MODEL, overrides={"epochs": 1}))
    _fails(
        make_config(overrides={"init_checkpoint": str(source.last_checkpoint)}),
        r"init_checkpoint '.*last.pt': .* does not match the model; missing keys: \['encoder.bias'",
    )
