"""The Space card that space/deploy.py writes into the bundle: the Hub links a Space to the models
and data its YAML names. (The bundle's contents and the upload are tested in test_space.py.)"""

from __future__ import annotations

import pytest
import yaml

from fer_hub.training.data import DEFAULT_DATASET

MODEL_REPOS = ["my-org/fer-cnn-model2", "my-org/fer-custom-cnn"]


def space_card(bundle) -> tuple[dict, str]:
    _, header, body = (bundle / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(header), body


def test_the_space_card_lists_the_model_repos_it_is_given_and_the_training_data(tiny_checkpoints, tmp_path):
    import deploy

    bundle = deploy.build_bundle(tmp_path / "bundle", tiny_checkpoints, MODEL_REPOS)
    meta, body = space_card(bundle)
    assert meta["models"] == MODEL_REPOS and meta["datasets"] == [DEFAULT_DATASET]
    # the rest of the card is the repo's space/README.md, unchanged
    source_meta, source_body = space_card(deploy.HERE)
    assert {k: v for k, v in meta.items() if k not in ("models", "datasets")} == source_meta
    assert body == source_body and meta["sdk"] == "gradio"


def test_the_space_card_names_no_models_when_the_deploy_knows_no_hub_repos(tiny_checkpoints, tmp_path):
    import deploy

    meta, _ = space_card(deploy.build_bundle(tmp_path / "bundle", tiny_checkpoints))
    assert "models" not in meta and meta["datasets"] == [DEFAULT_DATASET]


def test_deploy_takes_the_model_repos_comma_separated_and_refuses_one_that_is_not_a_repo_id(
    tiny_checkpoints, tmp_path, capsys
):
    import deploy

    argv = ["--checkpoints", str(tiny_checkpoints), "--build-only"]
    assert deploy.main([*argv, str(tmp_path / "a"), "--model-repo", " , ".join(MODEL_REPOS)]) == 0
    assert space_card(tmp_path / "a")[0]["models"] == MODEL_REPOS
    assert deploy.main([*argv, str(tmp_path / "b"), "--model-repo", "my-org/fer,not a repo"]) == 2
    assert "--model-repo 'not a repo' is not a valid Hub repo id" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_an_upload_checks_the_model_repos_before_the_token(monkeypatch, capsys):
    import deploy

    monkeypatch.setattr(deploy, "check_can_push", lambda repo_id: pytest.fail("asked the Hub first"))
    assert deploy.main(["--repo-id", "my-org/fer", "--model-repo", "bad/repo/id"]) == 2
    assert "--model-repo 'bad/repo/id'" in capsys.readouterr().err


def _needs_runtime():
    from fer_hub.web_export import RUNTIME_PACKAGE

    if not (RUNTIME_PACKAGE / "dist").is_dir():
        pytest.skip("onnxruntime-web is not installed: npm ci --prefix web --ignore-scripts")


@pytest.mark.slow
def test_static_deploy_builds_the_in_browser_app_as_a_static_space_linking_to_the_gradio_one(tmp_path):
    import json

    import deploy

    _needs_runtime()
    url = "https://huggingface.co/spaces/my-org/fer"
    out = tmp_path / "static"
    argv = ["--static", "--build-only", str(out), "--space-url", url, "--model-repo", ",".join(MODEL_REPOS)]
    assert deploy.main(argv) == 0
    meta, _ = space_card(out)
    assert meta["sdk"] == "static" and meta["app_file"] == "index.html" and meta["models"] == MODEL_REPOS
    assert json.loads((out / "fer_hub.json").read_text())["space_url"] == url


def test_the_gradio_space_links_to_the_static_app_it_is_deployed_with(
    tiny_checkpoints, tmp_path, monkeypatch
):
    import deploy
    import views

    url = "https://huggingface.co/spaces/my-org/fer-browser"
    bundle = deploy.build_bundle(tmp_path / "bundle", tiny_checkpoints, static_url=url)
    monkeypatch.delenv("FER_STATIC_APP_URL", raising=False)
    monkeypatch.setattr(views, "LINKS_FILE", bundle / "links.json")
    assert f"]({url})" in views.intro_markdown()
    monkeypatch.setattr(views, "LINKS_FILE", tmp_path / "none.json")
    assert "in your browser" not in views.intro_markdown()  # no link invented
    monkeypatch.setenv("FER_STATIC_APP_URL", "https://example.org/app")
    assert "](https://example.org/app)" in views.intro_markdown()


def test_deploy_refuses_a_static_url_on_the_static_app_itself(tmp_path, capsys):
    import deploy

    with pytest.raises(SystemExit):
        deploy.main(["--static", "--build-only", str(tmp_path / "x"), "--static-url", "https://x.org"])
    assert "--space-url" in capsys.readouterr().err
