from pathlib import Path

import pytest

from quorum.cluster.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config

MINIMAL = {"models": [{"id": "m", "source": "embedded:smollm2-135m-instruct"}]}


def test_default_config_serves_the_embedded_model() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.default_model_id == "smollm2-135m-instruct"
    assert config.models[0].is_embedded
    assert config.gateway.grpc_port == 50051


def test_error_names_the_field() -> None:
    data = {"models": [{"id": "m", "source": "x", "engine": {"tensor_parallel_size": 0}}]}
    with pytest.raises(ConfigError, match=r"models\.0\.engine\.tensor_parallel_size"):
        parse_config(data)


def test_unknown_field_is_rejected() -> None:
    data = {**MINIMAL, "gateway": {"grpc_prot": 1}}
    with pytest.raises(ConfigError, match=r"gateway\.grpc_prot: Extra inputs are not permitted"):
        parse_config(data)


def test_duplicate_model_ids_are_rejected() -> None:
    data = {"models": [{"id": "m", "source": "a"}, {"id": "m", "source": "b"}]}
    with pytest.raises(ConfigError, match="ids must be unique, repeated: m"):
        parse_config(data)


def test_default_model_must_exist() -> None:
    data = {**MINIMAL, "gateway": {"default_model": "other"}}
    with pytest.raises(ConfigError, match=r"gateway\.default_model: 'other' is not one of"):
        parse_config(data)


def test_model_id_characters() -> None:
    with pytest.raises(ConfigError, match=r"models\.0\.id"):
        parse_config({"models": [{"id": "bad id!", "source": "x"}]})


def test_no_models() -> None:
    with pytest.raises(ConfigError, match="models"):
        parse_config({"models": []})


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_dtype_defaults_to_float32_on_cpu_and_bfloat16_on_accelerators_and_quantized_weights() -> None:
    cpu = parse_config({"models": [{"id": "m", "source": "org/m"}]}).models[0]
    gpu = parse_config({"models": [{"id": "m", "source": "org/m", "deployment": {"num_gpus": 1}}]}).models[0]
    chosen = parse_config({"models": [{"id": "m", "source": "org/m", "engine": {"dtype": "float16"}}]}).models[0]
    assert (cpu.dtype_for(False), gpu.dtype_for(False), chosen.dtype_for(True)) == ("float32", "bfloat16", "float16")
    assert cpu.dtype_for(quantized_checkpoint=True) == "bfloat16"  # CPU int8 kernels take bfloat16 activations
    assert load_config(DEFAULT_CONFIG).models[0].dtype_for(False) == "float32"
