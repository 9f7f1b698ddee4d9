"""The onnxruntime sessions fer_hub opens: threads spin while a run lasts (or sleep, in a server)."""

from __future__ import annotations

import pytest

from fer_hub import Predictor
from fer_hub.errors import InputError
from fer_hub.onnx_session import WAIT_POLICY_ENV, cpu_session
from fer_hub.retinaface import WEIGHTS, RetinaFace


def _config(session, key: str) -> str:
    return session.get_session_options().get_session_config_entry(key)


def test_a_cpu_session_spins_during_a_run_and_stops_when_it_returns(monkeypatch):
    monkeypatch.delenv(WAIT_POLICY_ENV, raising=False)
    session = cpu_session(WEIGHTS, threads=2)
    assert _config(session, "session.intra_op.allow_spinning") == "1"
    # Without this, the spinning threads would keep the cores from the network that runs next.
    assert _config(session, "session.force_spinning_stop") == "1"
    assert session.get_session_options().intra_op_num_threads == 2
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_the_detector_and_the_onnx_classifier_open_their_sessions_the_same_way(tiny_checkpoints, monkeypatch):
    monkeypatch.setenv(WAIT_POLICY_ENV, "passive")
    detector = RetinaFace(threads=1).session
    predictor = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn")
    assert predictor.backend == "onnx"
    classifier = predictor.model.session
    for session in (detector, classifier):
        assert _config(session, "session.intra_op.allow_spinning") == "0"
    assert detector.get_session_options().intra_op_num_threads == 1


def test_an_unknown_wait_policy_is_a_clear_error(monkeypatch, tiny_checkpoints):
    monkeypatch.setenv(WAIT_POLICY_ENV, "turbo")
    message = "FER_HUB_WAIT_POLICY='turbo': expected one of active, passive"
    with pytest.raises(InputError, match=message):
        cpu_session(WEIGHTS)
    with pytest.raises(InputError, match=message):  # not mistaken for an unreadable model
        Predictor.from_pretrained(tiny_checkpoints / "custom-cnn", detector="haar")
