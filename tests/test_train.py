"""Training end to end on a tiny Hub-layout dataset: the model folder, the card, --push, Ctrl-C."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml

import fer_hub.training.cli as cli_mod
import fer_hub.training.config as config_mod
import fer_hub.training.folder as folder_mod
import fer_hub.training.loop as loop_mod
from fer_hub import CnnModel2, CustomCNN, load_model
from fer_hub.errors import FerHubError
from fer_hub.training.cli import main
from fer_hub.training.config import TrainConfig, build_parser, config_from_args, reproduce_command
from fer_hub.training.folder import write_model_folder
from fer_hub.training.loop import train
from fer_hub.training.state import config_differences

ROOT = Path(__file__).resolve().parents[1]
FOLDER_FILES = {
    "model.safetensors",
    "config.json",
    "README.md",
    "metrics.json",
    "history.json",
    "training_args.json",
    "training_curves.png",
    "confusion_matrix_validation.png",
    "confusion_matrix_test.png",
}


def quick(tiny_fer, tmp_path, **kw) -> TrainConfig:
    base = dict(dataset=str(tiny_fer), epochs=2, batch_size=32, seed=0, output=str(tmp_path / "out"))
    return TrainConfig(**{**base, **kw})


def card_yaml(folder: Path) -> dict:
    return yaml.safe_load((folder / "README.md").read_text().split("---")[1])


def test_train_writes_a_hub_folder_that_reloads_to_the_same_logits(tiny_fer, tmp_path):
    result = train(quick(tiny_fer, tmp_path, model="custom-cnn", limit=100), log=lambda *_: None)
    out = write_model_folder(result, tmp_path / "out")
    assert FOLDER_FILES <= {p.name for p in out.iterdir()}
    x = torch.randn(6, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(CustomCNN.from_pretrained(out)(x), result.model(x))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 100 and metrics["epochs_run"] == 2
    assert set(metrics["test"]) >= {"accuracy", "accuracy_tta", "macro_f1", "per_class", "confusion_matrix"}
    assert len(json.loads((out / "history.json").read_text())) == 2
    assert json.loads((out / "training_args.json").read_text())["output"] == os.path.relpath(tmp_path / "out")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


@pytest.mark.slow
def test_model_card_carries_metadata_and_eval_results(tiny_fer, tmp_path):
    result = train(quick(tiny_fer, tmp_path, model="cnn-model2", epochs=1), log=lambda *_: None)
    out = write_model_folder(result, tmp_path / "out")
    meta = card_yaml(out)
    assert meta["library_name"] == "fer-hub" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "image-classification"
    assert "fer2013" in meta["tags"]
    results = meta["model-index"][0]["results"]
    test_acc = [
        m["value"]
        for r in results
        if r["dataset"]["split"] == "test"
        for m in r["metrics"]
        if m["name"] == "Accuracy"
    ]
    assert test_acc == [round(result.metrics["test"]["accuracy"], 4)]
    text = (out / "README.md").read_text()
    for needle in (
        "confusion_matrix_test.png",
        "training_curves.png",
        "Not for decisions about people",
        "CnnModel2",
        "| test |",
    ):
        assert needle in text


@pytest.mark.slow
def test_best_validation_epoch_is_restored(tiny_fer, tmp_path, monkeypatch):
    # Make validation accuracy peak at epoch 2 of 4 whatever the network learns.
    scores = iter([0.2, 0.9, 0.5, 0.4])
    real = loop_mod.predict_proba
    states = {}

    def fake_val(model, x, **kw):
        probs = real(model, x, **kw)
        acc = next(scores)
        states[acc] = {k: v.clone() for k, v in model.state_dict().items()}
        y = torch.arange(len(x)) % 7
        n_right = round(acc * len(x))
        pred = torch.where(torch.arange(len(x)) < n_right, y, (y + 1) % 7)
        return torch.nn.functional.one_hot(pred, 7).float() + 0 * probs

    monkeypatch.setattr(loop_mod, "predict_proba", fake_val)
    cfg = quick(tiny_fer, tmp_path, epochs=4, patience=2)
    data = loop_mod.load_fer2013(cfg.dataset, log=lambda *_: None)
    data.y_val = torch.arange(len(data.y_val)) % 7
    result = train(cfg, data=data, log=lambda *_: None)
    assert result.metrics["best_epoch"] == 2 and result.metrics["epochs_run"] == 4  # patience 2
    for k, v in result.model.state_dict().items():
        assert torch.equal(v, states[0.9][k].cpu()), k


@pytest.mark.slow
def test_ctrl_c_writes_the_best_checkpoint_so_far_and_the_run_resumes(tiny_fer, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = loop_mod.augment_batch

    def interrupt_in_epoch_two(*a, **k):
        calls["n"] += 1
        if calls["n"] > 5:  # 140 train images / batch 32 = 4 steps per epoch
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop_mod, "augment_batch", interrupt_in_epoch_two)
    out = tmp_path / "out"
    assert (
        main(["--dataset", str(tiny_fer), "--epochs", "3", "--batch-size", "32", "--output", str(out)]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["best_epoch"] == 1
    assert "interrupted" in (out / "README.md").read_text()
    assert type(load_model(out)) is CustomCNN
    # The state of the last whole epoch stays, so the same command with --resume carries on.
    monkeypatch.setattr(loop_mod, "augment_batch", real)
    args = ["--dataset", str(tiny_fer), "--epochs", "3", "--batch-size", "32", "--output", str(out)]
    assert main(args) == 2  # not silently restarted over the unfinished run
    assert main(args + ["--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is False and metrics["epochs_run"] == 3
    assert not (out / "training_state.pt").exists()


@pytest.mark.slow
def test_push_uploads_the_generated_folder_in_one_commit(tiny_fer, tmp_path, monkeypatch, hub_online):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "create_repo",
        lambda self, repo_id, **kw: calls.append(("create_repo", repo_id, kw)),
    )

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns=(), **kw):
        import fnmatch

        names = [p.name for p in Path(folder_path).iterdir()]
        kept = [n for n in names if not any(fnmatch.fnmatch(n, pat) for pat in ignore_patterns)]
        calls.append(("upload_folder", repo_id, sorted(kept), kw))
        return "https://huggingface.co/my-org/fer-test/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".training_state.pt.tmp123").write_bytes(b"half-written state of a crashed run")
    code = main(
        [
            "--dataset",
            str(tiny_fer),
            "--epochs",
            "1",
            "--limit",
            "64",
            "--output",
            str(out),
            "--push",
            "--repo-id",
            "my-org/fer-test",
            "--private",
        ]
    )
    assert code == 0
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == "my-org/fer-test" and calls[0][2]["private"] is True
    assert calls[1][1] == "my-org/fer-test" and FOLDER_FILES <= set(calls[1][2])
    assert not any("training_state" in name for name in calls[1][2])  # scratch, not the model
    assert 'from_pretrained("my-org/fer-test")' in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "args, token, message",
    [
        (["--push"], "hf_x", "--push needs --repo-id"),
        (["--push", "--repo-id", "not a repo"], "hf_x", "not a valid Hub repo id"),
        (["--push", "--repo-id", "org/name"], None, "hf auth login"),
    ],
)
def test_push_problems_fail_before_any_training(args, token, message, monkeypatch, capsys):
    monkeypatch.setattr(cli_mod, "train", lambda *a, **k: pytest.fail("trained before checking --push"))
    monkeypatch.setattr("huggingface_hub.get_token", lambda: token)
    assert main(["--dataset", "unused"] + args) == 2
    assert message in capsys.readouterr().err


def test_push_while_offline_says_so_before_any_training(monkeypatch, capsys):
    monkeypatch.setattr(cli_mod, "train", lambda *a, **k: pytest.fail("trained before checking --push"))
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_tests")  # HF_HUB_OFFLINE=1: conftest
    assert main(["--dataset", "unused", "--push", "--repo-id", "org/name"]) == 2
    err = capsys.readouterr().err
    assert "--push cannot upload while HF_HUB_OFFLINE is set" in err and "Traceback" not in err


def test_push_with_a_token_the_hub_refuses_fails_before_any_training(monkeypatch, capsys, hub_online):
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError

    httpx = pytest.importorskip("httpx2")  # huggingface_hub 2's HTTP library

    def refuse(self, token=None, **kw):
        response = httpx.Response(401, request=httpx.Request("GET", "https://huggingface.co/api/whoami-v2"))
        raise HfHubHTTPError("Invalid user token.", response=response)

    monkeypatch.setattr(huggingface_hub.HfApi, "whoami", refuse)
    monkeypatch.setattr(cli_mod, "train", lambda *a, **k: pytest.fail("trained before checking --push"))
    assert main(["--dataset", "unused", "--push", "--repo-id", "org/name"]) == 2
    assert "the Hub refused the Hugging Face token (401" in capsys.readouterr().err


def test_bad_dataset_is_a_one_line_error_not_a_traceback(tmp_path, capsys):
    assert main(["--dataset", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'missing'}: no such folder") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_help_documents_every_flag_with_its_real_default():
    out = subprocess.run(
        [sys.executable, str(ROOT / "train_hub.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "default: None" not in out
    flat = " ".join(out.split())
    assert "reference 0.0005, strong 0.001, fast 0.002" in flat  # --lr, per recipe
    assert "da8d1643649c86bfc2cffba5b744b51fdf329212" in flat  # --revision
    for flag in (
        "--model",
        "--dataset",
        "--output",
        "--epochs",
        "--batch-size",
        "--lr",
        "--limit",
        "--device",
        "--seed",
        "--push",
        "--repo-id",
        "--private",
        "--recipe",
        "--resume",
        "--revision",
        "--threads",
        "--ema",
    ):
        assert flag in out


def test_recipe_values_apply_and_explicit_flags_override_them():
    args = config_mod.build_parser().parse_args(["--recipe", "fast", "--epochs", "3"])
    cfg = config_mod.config_from_args(args)
    assert (cfg.batch_size, cfg.schedule, cfg.epochs, cfg.lr) == (512, "onecycle", 3, 2e-3)
    ref = config_mod.config_from_args(config_mod.build_parser().parse_args([]))
    assert (ref.batch_size, ref.lr, ref.weight_decay, ref.patience, ref.epochs) == (64, 5e-4, 1e-4, 5, 100)
    assert (ref.ema, ref.scale, ref.erase, ref.rotation, ref.schedule) == (0.0, 0.0, 0.0, 10.0, "step")
    strong = config_mod.config_from_args(config_mod.build_parser().parse_args(["--recipe", "strong"]))
    assert (strong.ema, strong.schedule, strong.batch_size, strong.patience) == (0.999, "onecycle", 64, 0)
    lighter = [
        "--recipe",
        "strong",
        "--erase",
        "0",
        "--scale",
        "0.1",
        "--rotation",
        "10",
        "--weight-decay",
        "0.01",
    ]
    light = config_mod.config_from_args(config_mod.build_parser().parse_args(lighter))
    assert (light.erase, light.scale, light.rotation, light.weight_decay) == (0.0, 0.1, 10.0, 0.01)
    assert (light.ema, light.schedule, light.lr) == (0.999, "onecycle", 1e-3)  # the rest stays strong


@pytest.mark.slow
def test_fast_recipe_runs_on_cpu(tiny_fer, tmp_path):
    # the GPU recipe's one-cycle schedule and big batch also run on a CPU.
    args = config_mod.build_parser().parse_args(["--recipe", "fast", "--epochs", "2", "--batch-size", "64"])
    cfg = config_mod.config_from_args(args)
    cfg.dataset, cfg.output = str(tiny_fer), str(tmp_path / "out")
    result = train(cfg, log=lambda *_: None)
    assert result.metrics["epochs_run"] == 2


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_compiled_training_saves_and_ships_plain_weights(tiny_fer, tmp_path):
    # torch.compile wraps the module (its state dict gains an `_orig_mod.` prefix); what is saved
    # must be the plain module, loadable without fer_hub's training code.
    cfg = quick(tiny_fer, tmp_path, model="custom-cnn", epochs=1, compile=True)
    result = train(cfg, log=lambda *_: None)
    assert not any(k.startswith("_orig_mod.") for k in result.model.state_dict())
    out = write_model_folder(result, tmp_path / "folder")
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(load_model(out)(x), result.model(x))


def test_compile_is_on_where_measured_to_pay_off():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not loop_mod.compile_pays_off(cpu)
    assert loop_mod.compile_pays_off(cuda)


@pytest.mark.parametrize(
    "caps, expected",
    [
        ({"avx512_bf16": True}, True),
        ({"amx_bf16": True}, True),
        ({"avx512_f": True, "avx2": True}, False),
        ({}, False),
    ],
)
def test_bf16_is_on_where_the_cpu_computes_it_natively(caps, expected, monkeypatch):
    # Without native bf16 a CPU emulates it, slower than float32: auto must leave it off there.
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    assert loop_mod.bf16_pays_off(torch.device("cpu")) is expected
    assert loop_mod.bf16_pays_off(torch.device("cuda")) and not loop_mod.bf16_pays_off(torch.device("mps"))


@pytest.mark.parametrize("flags, expected", [([], None), (["--bf16"], True), (["--no-bf16"], False)])
def test_bf16_flag_forces_autocast_either_way_and_defaults_to_where_it_pays(flags, expected):
    cfg = config_mod.config_from_args(config_mod.build_parser().parse_args(flags))
    assert cfg.bf16 is expected


@pytest.mark.slow
@pytest.mark.parametrize("bf16", [True, False])
def test_bf16_training_ships_float32_weights_and_records_the_choice(bf16, tiny_fer, tmp_path):
    result = train(quick(tiny_fer, tmp_path, model="custom-cnn", limit=100, bf16=bf16), log=lambda *_: None)
    assert result.metrics["bf16"] is bf16
    assert all(p.dtype == torch.float32 for p in result.model.state_dict().values() if p.is_floating_point())
    assert torch.isfinite(torch.tensor(result.metrics["validation"]["accuracy"]))
    out = write_model_folder(result, tmp_path / "folder")
    assert ("bf16 autocast" in (out / "README.md").read_text()) is bf16


@pytest.mark.slow
def test_smoke_run_on_full_fer2013_learns_something(shared_fer, tmp_path):
    cfg = TrainConfig(dataset=str(shared_fer), epochs=1, limit=2000, output=str(tmp_path / "o"))
    result = train(cfg, log=lambda *_: None)
    assert result.metrics["validation"]["accuracy"] > 0.2  # chance is 1/7 = 0.14


@pytest.mark.slow
def test_distillation_from_a_teacher_folder_trains_and_is_recorded(tiny_fer, tmp_path):
    teacher = write_model_folder(
        train(quick(tiny_fer, tmp_path, epochs=2), log=lambda *_: None), tmp_path / "t"
    )
    logs = []
    cfg = quick(tiny_fer, tmp_path, epochs=1, teacher=[str(teacher)], output=str(tmp_path / "s"))
    result = train(cfg, log=logs.append)
    assert any("[distill] soft targets from" in str(line) for line in logs)
    assert result.history[0]["train_loss"] == result.history[0]["train_loss"]  # finite, not NaN
    card = write_model_folder(result, tmp_path / "student") / "README.md"
    assert "distilled from" in card.read_text()
    # the teacher is named by its weights' hash: its folder may later hold another model
    digest = hashlib.sha256((teacher / "model.safetensors").read_bytes()).hexdigest()
    assert result.metrics["teacher"][0]["sha256"] == digest
    assert result.metrics["teacher"][0]["architecture"] == "custom-cnn"
    assert digest[:16] in card.read_text()
    bad = quick(
        tiny_fer,
        tmp_path,
        epochs=1,
        teacher=[str(teacher), str(tmp_path / "nope")],
        output=str(tmp_path / "b"),
    )
    with pytest.raises(ValueError, match="--teacher"):
        train(bad, log=lambda *_: None)


def test_an_ensemble_teacher_gives_the_mean_of_its_teachers_soft_targets(tiny_fer, tmp_path):
    torch.manual_seed(0)
    a, b = CustomCNN().eval(), CnnModel2().eval()
    for model, name in ((a, "a"), (b, "b")):
        model.save_pretrained(tmp_path / name)
    x = torch.randint(0, 256, (16, 1, 48, 48), dtype=torch.uint8)
    one = lambda *teachers: loop_mod.teacher_targets(  # noqa: E731
        quick(tiny_fer, tmp_path, teacher=[str(tmp_path / t) for t in teachers]), x, log=lambda *_: None
    )
    both = one("a", "b")
    assert torch.allclose(both, (one("a") + one("b")) / 2)
    assert torch.allclose(both.sum(-1), torch.ones(16))
    assert not torch.allclose(both, one("a"), atol=1e-3)


def test_several_teachers_are_recorded_one_by_one_on_the_card():
    from fer_hub.training.card import _augmentation_text, _recipe_text

    config = {**asdict(TrainConfig()), "teacher": ["runs/s1", "runs/s2"]}
    text = _augmentation_text(config)
    assert "distilled from `runs/s1`, `runs/s2`" in text and "mean of the 2 teachers'" in text
    records = [{"folder": f, "architecture": "cnn-model2", "sha256": f * 8} for f in ("runs/s1", "runs/s2")]
    augmentation, _, command = _recipe_text({"teacher": records}, config)
    assert "The teacher 1 (`runs/s1`)" in augmentation and "The teacher 2 (`runs/s2`)" in augmentation
    assert "--teacher runs/s1 runs/s2" in command
    # a folder from before several teachers were allowed: one str, one record
    old = {**asdict(TrainConfig()), "teacher": "runs/t"}
    augmentation, _, command = _recipe_text({"teacher": records[0]}, old)
    assert "distilled from `runs/t` (" in augmentation and "its flip-averaged" in augmentation
    assert "The teacher, as read" in augmentation and "--teacher runs/t" in command


def test_a_run_recorded_with_one_teacher_resumes_with_the_same_flag():
    saved = {"teacher": "runs/t", "lr": 1}
    assert config_differences(saved, {"teacher": ["runs/t"], "lr": 1}) == []
    assert config_differences(saved, {"teacher": ["runs/t", "runs/u"], "lr": 1}) != []


@pytest.mark.slow
def test_a_warm_start_begins_from_the_given_folders_weights_and_is_recorded(tiny_fer, tmp_path):
    start = write_model_folder(
        train(quick(tiny_fer, tmp_path, epochs=1), log=lambda *_: None), tmp_path / "a"
    )
    logs = []
    cfg = quick(tiny_fer, tmp_path, epochs=1, lr=1e-9, init=str(start), output=str(tmp_path / "b"))
    result = train(cfg, log=logs.append)
    assert any("starting from the weights of" in str(line) for line in logs)
    # at a vanishing learning rate the fine-tuned weights are the starting ones (BatchNorm's
    # running statistics aside)
    before, after = load_model(start).state_dict(), result.model.state_dict()
    assert all(
        torch.allclose(before[k], after[k], atol=1e-4)
        for k in before
        if "running" not in k and "num_batches" not in k
    )
    assert (
        result.metrics["init"]["sha256"]
        == hashlib.sha256((start / "model.safetensors").read_bytes()).hexdigest()
    )
    assert (
        "fine-tuned from the weights of"
        in (write_model_folder(result, tmp_path / "c") / "README.md").read_text()
    )
    wrong = quick(
        tiny_fer, tmp_path, model="cnn-model2", epochs=1, init=str(start), output=str(tmp_path / "d")
    )
    with pytest.raises(FerHubError, match="holds a CustomCNN, not a CnnModel2"):
        train(wrong, log=lambda *_: None)


def test_the_logit_adjusted_loss_is_minimised_by_balanced_logits_where_plain_loss_learns_the_prior():
    """What a model can learn from a face that carries no signal is one logit vector b. Plain
    cross-entropy is minimised by softmax(b) = the label frequencies (the model favours the
    majority class); with tau = 1 the loss sees b + log prior, so the best b is uniform."""
    y = torch.tensor([0] * 150 + [1, 2, 3, 4, 5, 6] * 5 + [4] * 20)  # 75% angry, 12% neutral
    prior = torch.bincount(y, minlength=7).float() / len(y)
    learnt = {}
    for tau in (0.0, 1.0):
        cfg = TrainConfig(logit_adjust=tau, label_smoothing=0.0)
        b = torch.zeros(7, requires_grad=True)
        opt = torch.optim.Adam([b], lr=0.05)
        for _ in range(600):
            opt.zero_grad()
            loop_mod.label_loss(b.expand(len(y), 7), y, cfg, prior.log()).backward()
            opt.step()
        learnt[tau] = b.detach().softmax(-1)
    assert torch.allclose(learnt[0.0], prior, atol=0.01)
    assert torch.allclose(learnt[1.0], torch.full((7,), 1 / 7), atol=0.01)
    # mixup's two labels weigh in by lam: lam = 1 is the plain loss, lam = 0 the mate's
    logits, cfg = torch.randn(8, 7, generator=torch.Generator().manual_seed(0)), TrainConfig()
    mate = torch.arange(8).flip(0)
    for lam, target in ((1.0, y[:8]), (0.0, y[:8][mate])):
        mixed = loop_mod.label_loss(logits, y[:8], cfg, prior.log(), torch.full((8,), lam), mate)
        assert torch.isclose(mixed, loop_mod.label_loss(logits, target, cfg, prior.log()))


@pytest.mark.slow
def test_mixup_trains_with_finite_losses_and_is_on_the_card(tiny_fer, tmp_path):
    result = train(quick(tiny_fer, tmp_path, epochs=1, mixup=0.4, degrade=0.5), log=lambda *_: None)
    assert all(h["train_loss"] == h["train_loss"] for h in result.history)
    card = (write_model_folder(result, tmp_path / "m") / "README.md").read_text()
    assert "mixup with Beta(0.4, 0.4)" in card and "low resolution or low light with probability 0.5" in card


@pytest.mark.parametrize(
    "flags",
    [
        "--model custom-cnn --recipe strong --epochs 60 --rotation 10 --scale 0.1 --erase 0 --teacher t",
        "--model cnn-model2 --recipe strong --teacher runs/s1 runs/s2 runs/s3 --distill 0.7",
        "--model cnn-model2 --recipe reference --limit 500 --lr 0.002 --batch-size 32 --save-dtype float16",
        "--recipe fast --device cuda --threads 4 --output o --ema 0.99 --weight-decay 0.01 --seed 3",
        "--model cnn-model2 --recipe strong --init a/b --mixup 0.2 --logit-adjust 1 --degrade 0.3",
    ],
)
def test_reproduce_command_rebuilds_the_run_it_describes(flags):
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(flags.split()))
    command = reproduce_command(vars(cfg))
    assert command.startswith("python train_hub.py ")
    again = config_from_args(parser.parse_args(command.split()[2:]))
    learning = set(vars(cfg)) - config_mod.NOT_REPRODUCED
    assert {k: vars(again)[k] for k in learning} == {k: vars(cfg)[k] for k in learning}
    assert "--output" not in command and "--threads" not in command  # where it ran, not what it learnt


def test_an_output_folder_that_cannot_be_written_is_refused_before_loading_data(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["--dataset", "never-loaded/at-all", "--output", str(a_file / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --output {a_file / 'run'}: cannot write there") and "dataset" not in err


def test_an_output_folder_without_room_for_the_state_is_refused_before_loading_data(
    tmp_path, monkeypatch, capsys
):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 10**6, 10**6))
    assert main(["--dataset", "never-loaded/at-all", "--output", str(tmp_path / "run")]) == 2
    assert "1 MB free, but the training state needs about" in capsys.readouterr().err


def test_a_save_that_fills_the_disk_keeps_the_previous_state_and_leaves_no_partial_file(
    tmp_path, monkeypatch
):
    from fer_hub.training.state import STATE_FILE, TrainState, prepare_output

    path = tmp_path / STATE_FILE
    TrainState(config={"epochs": 3}, epoch=1).save(path)

    def full_disk(obj, f):
        f.write(b"x" * 1000)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(FerHubError, match="No space left on device.*the previous epoch's state is kept"):
        TrainState(config={"epochs": 3}, epoch=2).save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE] and TrainState.load(path).epoch == 1
    (tmp_path / f".{STATE_FILE}.tmp4242").write_bytes(b"left by a crash")  # a kill -9 mid-save
    prepare_output(tmp_path, state_bytes=1000)  # what a --resume does first
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]


def test_a_model_folder_is_never_left_half_written(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "training_state.pt").write_bytes(b"the run's state")

    def crash(result, folder):
        (folder / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder_mod, "_write_model_files", crash)
    with pytest.raises(OSError):
        write_model_folder(None, out)
    assert [p.name for p in out.iterdir()] == ["training_state.pt"]  # as it was: no config.json
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left

    monkeypatch.setattr(
        folder_mod, "_write_model_files", lambda result, folder: (folder / "config.json").write_text("{}")
    )
    write_model_folder(None, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "training_state.pt",
    ]  # the state moved along
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_sizing_the_training_state_draws_no_random_numbers():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert loop_mod.state_size("cnn-model2") > 0
    assert torch.equal(before, torch.get_rng_state())  # the model's initialisation stays the first draw


def test_a_bug_in_training_keeps_its_traceback(monkeypatch, tmp_path):
    def bug(*_args, **_kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (64x9216 and 4608x512)")

    monkeypatch.setattr(cli_mod, "train", bug)  # not the user's input: no "error:" line hides it
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        main(["--dataset", "unused", "--output", str(tmp_path / "o")])


@pytest.mark.slow
def test_ema_batchnorm_validates_and_ships_the_weight_average_with_its_own_statistics(tiny_fer, tmp_path):
    from fer_hub.training.batchnorm import refresh_batchnorm
    from fer_hub.training.data import load_fer2013

    x_train = load_fer2013(str(tiny_fer), log=lambda *_: None).x_train
    shipped = {}
    for faces in (0, 64):
        cfg = quick(
            tiny_fer, tmp_path / str(faces), model="custom-cnn", epochs=1, ema=0.9, ema_batchnorm=faces
        )
        shipped[faces] = train(cfg, log=lambda *_: None).model
    # the same weights either way: only the statistics the average carries differ
    assert torch.equal(shipped[0].fc2.weight, shipped[64].fc2.weight)
    expected = refresh_batchnorm(copy.deepcopy(shipped[64]), x_train, faces=64)
    norm = lambda m: m.features[0][2]  # noqa: E731 - conv, ReLU, BatchNorm
    # (up to float rounding: training holds the weights channels-last)
    assert torch.allclose(norm(shipped[64]).running_mean, norm(expected).running_mean, atol=1e-4)
    assert torch.allclose(norm(shipped[64]).running_var, norm(expected).running_var, rtol=1e-2, atol=1e-6)
    assert not torch.allclose(norm(shipped[0]).running_mean, norm(expected).running_mean, atol=1e-3)


def test_ema_batchnorm_needs_a_weight_average(capsys):
    from fer_hub.training.cli import main as train_main

    with pytest.raises(SystemExit):
        train_main(["--ema-batchnorm", "4096"])  # the reference recipe has no weight average
    assert "--ema-batchnorm 4096" in capsys.readouterr().err
