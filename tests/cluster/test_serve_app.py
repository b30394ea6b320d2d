"""`llm.engine: serve` on a real 3-node Ray cluster: the run's Serve LLM app (a CPU vLLM replica of
SmolLM2) lands on the `vllm` node, answers through its route, is attached to by name, and is removed.

The app also serves a tiny trained model from an S3-compatible store (moto's server on 127.0.0.1),
deployed as evaluate deploys the model under test of an s3:// run dir: the replica's node downloads
it from the bucket (Serve LLM's bucket mirror), with the credentials and endpoint of the job's
runtime_env (the cluster's nodes start without them), into a cache dir named by the model's version.

One cluster and one app for the whole file (start-up ~65 s on an idle 2-core box).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import local_cluster, node_id
from toolweave.config import EndpointConfig, LLMSettings, ServeAppConfig, ServeDeploymentConfig
from toolweave.llm.engine import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

APP = "tw-test-llm"
TRAINED = "trained"  # the model under test's served name
UPLOAD = "5e1f" * 8  # the model's `hash` file, as training.trainer.upload_model writes one per upload
ROOT = Path(__file__).parents[2]


def cpu_settings(port: int) -> LLMSettings:
    """One CPU replica of the shipped SmolLM2 on a `vllm` node (no GPU in its bundle)."""
    return LLMSettings(
        engine="serve",
        serve=ServeAppConfig(app_name=APP, port=port, startup_timeout_s=600),
        endpoints={"default": EndpointConfig(model="smollm2", timeout_s=300),
                   "judge": EndpointConfig(model="smollm2", timeout_s=300, max_concurrency=4)},
        deployments=[ServeDeploymentConfig(
            model_id="smollm2", model_source="smollm2", min_replicas=1, max_replicas=1, max_model_len=2048,
            gpus_per_worker=0, cpus_per_worker=1, prefix_aware_router=False,
            engine_kwargs={"dtype": "float32", "enforce_eager": True},
            env_vars={"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"})])


def tiny_trained_model(out: Path) -> Path:
    """A model as the train stage saves it: a tiny Llama (head_dim 64: vLLM's CPU attention has a
    kernel for it) with the SmolLM2 tokenizer."""
    from toolweave.config import TrainConfig
    from training.model import build_model
    from training.tokenizers import load_tokenizer
    tokenizer = load_tokenizer("smollm2")
    train = TrainConfig(model="tiny", max_len=1024, tiny={"hidden_size": 128, "intermediate_size": 256,
                                                          "num_hidden_layers": 2, "num_attention_heads": 2,
                                                          "num_key_value_heads": 2})
    model = build_model(train, len(tokenizer))
    model.config.use_cache = True
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from actors.serve import deploy_app, model_under_test_settings, remove_app
    from toolweave import io
    from toolweave.config import RunConfig
    from toolweave.stages.evaluate import MIRROR_VERSION_FILE, served_model_id, served_model_source
    from toolweave.testing.object_store import moto_s3

    model = tmp_path_factory.mktemp("model")
    # made in a child process: this one (Ray's driver) stays without the trainer's imports
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from tests.cluster.test_serve_app "
                    "import tiny_trained_model; tiny_trained_model(Path(sys.argv[1]))", str(model)],
                   cwd=ROOT, check=True, capture_output=True)
    (model / MIRROR_VERSION_FILE).write_text(UPLOAD)
    with moto_s3() as root:
        run = RunConfig(run_dir=f"{root}/runs/serve-app", evaluate={"solve_with": "trained"})
        io.upload_dir(model, run.path("model"))
        model_uri, model_id = served_model_source(run), served_model_id(run)  # as evaluate deploys it
        # the nodes start without the AWS_* variables moto_s3 set here (moto_s3 restores them); the
        # driver's runtime_env has them, as a job submitted with the bucket's settings has (Serve
        # gives its deployments the driver's runtime_env)
        aws = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
        with local_cluster(driver_env=aws, vllm={"num_cpus": 4, "resources": {"vllm": 2}},
                           sim={"num_cpus": 2, "resources": {"simulate": 2}}) as (cluster, nodes):
            settings = cpu_settings(free_port())
            # the model under test's deployment, as evaluate makes it for an s3:// run dir (its own HF
            # cache: the download lands there, not in the user's)
            hub_cache = tmp_path_factory.mktemp("hf-hub")
            (trained,) = model_under_test_settings(settings, model_uri, model_id, 1024).deployments
            trained = trained.model_copy(update={"env_vars": {**trained.env_vars, "HF_HUB_CACHE": str(hub_cache)}})
            settings = settings.model_copy(update={"deployments": [*settings.deployments, trained]})
            app = deploy_app(settings)
            try:
                yield settings, app, nodes, hub_cache
            finally:
                remove_app(app)


def _replica_actors():
    from ray.util.state import list_actors

    return [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
            if "LLMServer" in (a.class_name or "")]


def test_the_replica_and_its_bundles_are_on_the_vllm_node(served):
    from ray.util.state import list_placement_groups

    from toolweave.placement import replica_bundles
    settings, app, nodes, _ = served
    assert app.deployed and app.base_url.endswith(f"/{APP}/v1")
    replicas = _replica_actors()
    assert len(replicas) == 2, replicas  # SmolLM2's and the trained model's
    assert {r.node_id for r in replicas} == {node_id(nodes["vllm"])}  # Ray's record, not the config
    groups = [g for g in list_placement_groups(detail=True, limit=1000) if g.state == "CREATED"]
    bundles = [b for g in groups for b in g.bundles if b.get("unit_resources", {}).get("vllm")]
    assert len(bundles) == 2 and {b["node_id"] for b in bundles} == {node_id(nodes["vllm"])}
    # what the fit check of cluster.yaml counts is what Serve reserved
    assert [b["unit_resources"] for b in bundles] == [replica_bundles(settings.deployments[0])[0]] * 2


def test_every_role_answers_through_the_app_route(served):
    from actors.serve import resolve_endpoints
    from toolweave.llm.client import clients_for
    settings, app, _, _ = served
    resolved = resolve_endpoints(settings, app.base_url)
    clients = clients_for(resolved)
    assert {c.endpoint.base_url for c in clients.values()} == {app.base_url}

    async def ask():
        try:
            return await clients["judge"].chat([{"role": "user", "content": "What is the capital of France?"}],
                                               max_tokens=20, temperature=0.0)
        finally:
            for c in {id(c): c for c in clients.values()}.values():
                await c.aclose()

    reply = asyncio.run(ask())
    assert "Paris" in reply.content and reply.usage.completion_tokens > 0


def test_the_trained_model_is_downloaded_from_the_bucket_by_the_replicas_node_and_answers(served):
    from actors.serve import model_under_test_settings, resolve_endpoints
    from toolweave.llm.client import clients_for
    settings, app, _, hub_cache = served
    source, model_id = settings.deployments[1].model_source, settings.deployments[1].model_id
    assert source.startswith("s3://")  # given to Serve as the bucket's URI, not a local copy
    # Serve LLM's download, in a dir of this version's own (the id names it: evaluate.served_model_id),
    # its snapshot named by the upload's `hash`
    assert model_id.startswith(f"{TRAINED}-")
    assert {d.name for d in hub_cache.glob("models--*")} == {f"models--{model_id}"}
    snapshots = list((hub_cache / f"models--{model_id}" / "snapshots").iterdir())
    assert [s.name for s in snapshots] == [UPLOAD] and {"config.json", "model.safetensors", "tokenizer.json"} <= {
        f.name for f in snapshots[0].iterdir()}
    clients = clients_for(resolve_endpoints(model_under_test_settings(settings, source, model_id), app.base_url))

    async def ask():
        try:
            return await clients["assistant"].chat([{"role": "user", "content": "Hello"}], max_tokens=8,
                                                   temperature=0.0)
        finally:
            await clients["assistant"].aclose()

    reply = asyncio.run(ask())  # random weights: any tokens, but from this model
    assert reply.usage.completion_tokens > 0


def test_attaching_by_name_deploys_nothing_and_removes_nothing(served):
    from ray import serve

    from actors.serve import deploy_app, remove_app
    settings, app, _, _ = served
    before = [a.actor_id for a in _replica_actors()]
    attached = deploy_app(settings)
    assert not attached.deployed and attached.base_url == app.base_url
    assert [a.actor_id for a in _replica_actors()] == before
    assert list(serve.status().applications) == [APP]
    remove_app(attached)  # not ours: the app stays
    assert serve.status().applications[APP].status == "RUNNING"


def test_the_held_app_command_attaches_and_down_of_an_unknown_app_is_harmless(served, tmp_path, capsys):
    import yaml
    from ray import serve

    from actors.serve import main
    settings, app, _, _ = served
    config = tmp_path / "held.yaml"
    config.write_text(yaml.safe_dump({"llm": settings.model_dump(mode="json")}))
    assert main(["up", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"attached to running Serve app {APP}: {app.base_url}"
    assert main(["down", "--config", str(config), "llm.serve.app_name=not-there"]) == 0
    assert "no Serve app not-there is running" in capsys.readouterr().out
    assert list(serve.status().applications) == [APP]


def test_the_run_removes_the_app_it_deployed(served):
    from ray import serve

    from actors.serve import remove_app
    from tests.cluster.conftest import wait_for
    _, app, _, _ = served
    remove_app(app)
    wait_for(lambda: APP not in serve.status().applications and not _replica_actors(), 120,
             "the app and its replica gone after remove_app")
