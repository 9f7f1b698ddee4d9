"""The onnxruntime sessions fer_hub opens: threads spin while a run lasts, and stop when it returns."""

from __future__ import annotations

from fer_hub import Predictor
from fer_hub.onnx_session import cpu_session
from fer_hub.retinaface import WEIGHTS, RetinaFace


def _config(session, key: str) -> str:
    return session.get_session_options().get_session_config_entry(key)


def test_a_cpu_session_spins_during_a_run_and_stops_when_it_returns():
    session = cpu_session(WEIGHTS, threads=2)
    assert _config(session, "session.intra_op.allow_spinning") == "1"
    # Without this, the spinning threads would keep the cores from the network that runs next.
    assert _config(session, "session.force_spinning_stop") == "1"
    assert session.get_session_options().intra_op_num_threads == 2
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_the_detector_and_the_onnx_classifier_open_their_sessions_the_same_way(tiny_checkpoints):
    detector = RetinaFace(threads=1).session
    predictor = Predictor.from_pretrained(tiny_checkpoints / "custom-cnn")
    assert predictor.backend == "onnx"
    classifier = predictor.model.session
    for session in (detector, classifier):
        assert _config(session, "session.force_spinning_stop") == "1"
    assert detector.get_session_options().intra_op_num_threads == 1
