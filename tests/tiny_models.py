"""Tiny randomly initialised Hugging Face checkpoints, built and saved locally for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

CORPUS = [
    "Human: What do you think is the relationship between the premise and the hypothesis?",
    "Assistant: If I had to select one of the options, my answer would be: (1) Entail",
    "Binadamu: Unafikiri kuna uhusiano gani kati ya dhana na nadharia?",
    "Msaidizi: Ikiwa ningelazimika kuchagua moja ya chaguo, jibu langu lingekuwa: (2)",
    "Humain : Quelle est selon vous la relation entre la prémisse et l'hypothèse ?",
]
PAD, BOS, EOS = 0, 1, 2
ARCHS = ("qwen2", "llama", "mistral", "gpt2")


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
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def hf_model(arch: str, vocab: int, n_layers: int = 3, seed: int = 0) -> torch.nn.Module:
    """A random causal LM of the given architecture, peaked enough to avoid argmax ties."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    llama_like = dict(
        hidden_size=64, intermediate_size=96, num_hidden_layers=n_layers, num_attention_heads=4,
        max_position_embeddings=1024, initializer_range=0.1, tie_word_embeddings=False, **common,
    )
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=2, **llama_like))
    elif arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=4, **llama_like))
    elif arch == "mistral":
        model = MistralForCausalLM(MistralConfig(num_key_value_heads=2, sliding_window=None, **llama_like))
    elif arch == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(
            n_embd=64, n_layer=n_layers, n_head=4, n_positions=1024, initializer_range=0.1,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        ))
    else:
        raise ValueError(f"unknown arch {arch!r}; valid: {ARCHS}")
    return model.eval()


def save_checkpoint(arch: str, directory: Path, n_layers: int = 3) -> Path:
    """Save a tiny ``arch`` checkpoint (safetensors + tokenizer) in ``directory``."""
    tok = tokenizer()
    model = hf_model(arch, len(tok), n_layers)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory
