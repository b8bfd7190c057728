"""Serve options computed from the config: replicas, autoscaling, placement groups, the router."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum.cluster.config import ConfigError, ModelConfig, QuorumConfig, parse_config
from quorum.cluster.deployments import PREFIX_ROUTER, actor_options, placement, router_config, scaling, spread
from quorum.cluster.engine import cpu_threads_bind, engine_args
from quorum.services.app import front_actor_options


def _config(engine: dict[str, Any] | None = None, deployment: dict[str, Any] | None = None) -> QuorumConfig:
    model = {"id": "m", "source": "embedded:smollm2-135m-instruct", "engine": engine or {}}
    if deployment is not None:
        model["deployment"] = deployment
    return parse_config({"models": [model]})


def _model(**kwargs: Any) -> ModelConfig:
    return _config(**kwargs).models[0]


def test_fixed_replicas() -> None:
    assert scaling(_model(deployment={"num_replicas": 3})) == {"num_replicas": 3}


def test_autoscaling_becomes_serve_autoscaling_config() -> None:
    model = _model(deployment={"autoscaling": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}})
    options = scaling(model)
    assert options["num_replicas"] == "auto"
    assert options["autoscaling_config"]["min_replicas"] == 1
    assert options["autoscaling_config"]["max_replicas"] == 4
    assert options["autoscaling_config"]["target_ongoing_requests"] == 8


@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        ({"num_replicas": 2, "autoscaling": {}}, r"models\.0\.deployment: Value error, set either num_replicas"),
        (
            {"autoscaling": {"min_replicas": 3, "max_replicas": 2}},
            r"deployment\.autoscaling: Value error, min_replicas",
        ),
        ({"routing": {"policy": "random"}}, r"deployment\.routing\.policy: Input should be 'prefix_aware'"),
    ],
)
def test_bad_scaling_and_routing_name_the_field(deployment: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(deployment=deployment)


def test_single_rank_has_no_placement_group() -> None:
    assert placement(_model()) == {}


def test_cpu_tensor_parallel_reserves_a_bundle_per_rank_on_one_node() -> None:
    model = _model(engine={"tensor_parallel_size": 2}, deployment={"num_cpus": 1})
    assert placement(model) == {
        "placement_group_bundles": [{"CPU": 1}, {"CPU": 1}],
        "placement_group_strategy": "STRICT_PACK",
    }
    assert model.executor_backend == "mp"
    assert engine_args(model, "/weights").distributed_executor_backend == "mp"


def test_gpu_ranks_get_one_accelerator_each_and_pipeline_stages_may_spread() -> None:
    tp = _model(engine={"tensor_parallel_size": 4}, deployment={"num_gpus": 4, "num_cpus": 2})
    assert placement(tp)["placement_group_bundles"] == [{"CPU": 2, "GPU": 1}, {"GPU": 1}, {"GPU": 1}, {"GPU": 1}]
    assert placement(tp)["placement_group_strategy"] == "STRICT_PACK"
    assert tp.executor_backend == "ray"
    pp = _model(engine={"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, deployment={"num_gpus": 4})
    assert len(placement(pp)["placement_group_bundles"]) == 4
    assert placement(pp)["placement_group_strategy"] == "PACK"


def test_fractional_accelerators_with_parallelism_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"models\.0: Value error, deployment\.num_gpus: .* set 2 \(GPU hosts\)"):
        _config(engine={"tensor_parallel_size": 2}, deployment={"num_gpus": 1})


def test_cpu_threads_are_split_over_the_ranks() -> None:
    assert cpu_threads_bind(_model(), [0, 1]) is None
    assert cpu_threads_bind(_model(engine={"tensor_parallel_size": 2}), [0, 1]) == "0|1"
    assert cpu_threads_bind(_model(engine={"tensor_parallel_size": 2}), [0, 1, 2, 3, 4]) == "0-2|3-4"
    assert cpu_threads_bind(_model(engine={"tensor_parallel_size": 2, "cpu_threads_bind": "4|6"}), [0]) == "4|6"
    with pytest.raises(ValueError, match="2 engine ranks need at least 2 cores"):
        cpu_threads_bind(_model(engine={"tensor_parallel_size": 2}), [0])


def test_prefix_router_gets_the_model_config() -> None:
    config = _config()
    routed = router_config(config.models[0], config)
    assert routed.request_router_class == PREFIX_ROUTER
    assert ModelConfig.model_validate(routed.request_router_kwargs["model"]) == config.models[0]
    default = router_config(_model(deployment={"routing": {"policy": "power_of_two"}}), config)
    assert "PowerOfTwo" in str(default.request_router_class)


def test_kv_transfer_config_reaches_the_engine() -> None:
    model = _model(engine={"kv_transfer_config": {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}})
    args = engine_args(model, "/weights")
    assert args.kv_transfer_config is not None
    assert args.kv_transfer_config.kv_connector == "LMCacheConnectorV1"


def test_quantized_weights_run_in_bfloat16_on_cpu_and_float32_is_refused_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"format": "int-quantized"}}))
    assert engine_args(_model(), str(tmp_path)).dtype == "bfloat16"
    assert engine_args(_model(), "/weights").dtype == "float32"
    with pytest.raises(ValueError, match=r"models\[\]\.engine\.dtype: float32 cannot run a quantized checkpoint"):
        engine_args(_model(engine={"dtype": "float32"}), str(tmp_path))


@pytest.mark.parametrize("overlay", ["gpu", "cpu-dev"])
def test_shipped_manifests_carry_configs_quorum_accepts(overlay: str) -> None:
    """k8s/ is the chart's rendering (checked by the deploy tests); its Serve config must pass pydantic too."""
    manifest = Path(__file__).parents[2] / "k8s" / "overlays" / overlay / "rayservice-quorum.yaml"
    serve = yaml.safe_load(yaml.safe_load(manifest.read_text())["spec"]["serveConfigV2"])
    for app in serve["applications"]:
        config = parse_config(app["args"]["config"])
        for model in config.models:
            assert model.deployment.num_gpus in (0, model.world_size)


def test_one_replica_per_node_on_labelled_nodes() -> None:
    model = _model(deployment={"num_replicas": 2, "max_replicas_per_node": 1, "label_selector": {"role": "engine"}})
    assert spread(model) == {"max_replicas_per_node": 1}
    assert actor_options(model) == {"num_cpus": 1, "num_gpus": 0, "label_selector": {"role": "engine"}}
    assert spread(_model()) == {}
    assert "label_selector" not in actor_options(_model())


def test_a_tensor_parallel_replica_carries_its_labels_on_every_bundle() -> None:
    model = _model(engine={"tensor_parallel_size": 2}, deployment={"label_selector": {"role": "engine"}})
    assert placement(model)["placement_group_bundle_label_selector"] == [{"role": "engine"}, {"role": "engine"}]
    assert "label_selector" not in actor_options(model)


def test_gateway_and_reasoning_can_be_pinned_to_labelled_nodes() -> None:
    config = parse_config(
        {
            "models": [{"id": "m", "source": "embedded:smollm2-135m-instruct"}],
            "gateway": {"label_selector": {"role": "head"}},
        }
    )
    assert front_actor_options(config.gateway.label_selector) == {"num_cpus": 0, "label_selector": {"role": "head"}}
    assert front_actor_options(config.reasoning.label_selector) == {"num_cpus": 0}
