"""Tiny randomly initialised Hugging Face checkpoints, built locally (for tests and benchmarks).

Nothing here downloads: the tokenizer is a byte-level BPE trained on a few
sentences, the models are random ``transformers`` models of real architectures.

Example:
    >>> from pathlib import Path
    >>> from xtl.testing import save_checkpoint
    >>> model = xtl.load_model(save_checkpoint("qwen2", Path("qwen2-tiny")))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from xtl.errors import InputError

CORPUS = [
    "Human: What do you think is the relationship between the premise and the hypothesis?",
    "Assistant: If I had to select one of the options, my answer would be: (1) Entail",
    "Binadamu: Unafikiri kuna uhusiano gani kati ya dhana na nadharia?",
    "Msaidizi: Ikiwa ningelazimika kuchagua moja ya chaguo, jibu langu lingekuwa: (2)",
    "Humain : Quelle est selon vous la relation entre la prémisse et l'hypothèse ?",
]
PAD, BOS, EOS = 0, 1, 2
ARCHS = ("qwen2", "llama", "mistral", "gpt2", "gemma3")
# gemma3: a sliding window this short, so that the tests' prompts run past it
GEMMA3_WINDOW = 8


def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (any text encodes) with pad/bos/eos = 0/1/2."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def hf_model(
    arch: str,
    vocab: int,
    n_layers: int = 3,
    seed: int = 0,
    d_model: int = 64,
    n_heads: int = 4,
    d_mlp: int | None = None,
) -> PreTrainedModel:
    """A random causal LM of the given architecture, peaked enough to avoid argmax ties."""
    torch.manual_seed(seed)
    model: PreTrainedModel
    common: dict[str, Any] = dict(vocab_size=vocab, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    llama_like: dict[str, Any] = dict(
        hidden_size=d_model,
        intermediate_size=d_mlp or 3 * d_model // 2,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        max_position_embeddings=1024,
        initializer_range=0.1,
        tie_word_embeddings=False,
        **common,
    )
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=2, **llama_like))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=4, **llama_like))
    elif arch == "mistral":
        model = MistralForCausalLM(MistralConfig(num_key_value_heads=2, sliding_window=None, **llama_like))
    elif arch == "gemma3":  # local and global attention, query/key norms, norms after attention and MLP
        model = Gemma3ForCausalLM(
            Gemma3TextConfig(
                num_key_value_heads=2,
                head_dim=d_model // n_heads,
                query_pre_attn_scalar=d_model // n_heads,
                hidden_activation="gelu_pytorch_tanh",
                sliding_window=GEMMA3_WINDOW,
                layer_types=["full_attention" if (i + 1) % 3 == 0 else "sliding_attention" for i in range(n_layers)],
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                },
                **{**llama_like, "tie_word_embeddings": True},  # as Gemma's checkpoints are
            )
        )
    elif arch == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                n_embd=d_model,
                n_layer=n_layers,
                n_head=n_heads,
                n_positions=1024,
                initializer_range=0.1,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                **common,
            )
        )
    else:
        raise InputError(f"unknown arch {arch!r}; valid: {ARCHS}")
    return model.eval()


def save_checkpoint(arch: str, directory: Path, n_layers: int = 3, **sizes: int) -> Path:
    """Save a tiny ``arch`` checkpoint (safetensors + tokenizer) in ``directory``.

    ``sizes`` go to :func:`hf_model` (``d_model``, ``n_heads``, ``d_mlp``, ``seed``).
    """
    tok = tokenizer()
    model = hf_model(arch, len(tok), n_layers, **sizes)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory
