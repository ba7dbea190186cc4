"""Train the toy model from scratch: ``python -m xtl.toy.train --out DIR``.

Regenerates the world's corpus, trains a byte-level BPE Hugging Face
tokenizer on it, and trains a small Qwen2-architecture causal LM with the
``transformers`` Trainer on the CPU, writing the checkpoint (safetensors +
tokenizer.json), the loss curve (``loss.csv``) and the world's settings
(``world.json``) to ``DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from xtl.toy.world import World

SPECIAL = ("<pad>", "<s>", "</s>")


@dataclass(frozen=True)
class ToyConfig:
    """Everything that determines the trained toy model."""

    seed: int = 0
    n_countries: int = 60
    repeats: int = 4
    n_layers: int = 6
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    max_steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 2e-3


def build_tokenizer(lines: list[str], vocab_size: int = 2000):
    """A byte-level BPE tokenizer trained on the corpus, big enough that every corpus word
    (after a space) is one token, with <s>/</s>/<pad> specials.

    Byte-level BPE reloads identically through ``AutoTokenizer`` (which, in
    transformers 5, rebuilds a Qwen2 checkpoint's tokenizer as ``Qwen2Tokenizer``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL[:3]), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_model(config: ToyConfig, vocab_size: int, tokenizer):
    """A freshly initialised Qwen2 causal LM of the toy's size."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(config.seed)
    hf_config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(hf_config)


def train(config: ToyConfig, out: Path, progress: bool = True) -> dict:
    """Generate the corpus, train, and save the checkpoint to ``out``; returns a summary."""
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    world = World.generate(config.seed, config.n_countries)
    lines = world.corpus(config.repeats)
    tokenizer = build_tokenizer(lines)

    def encode(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [[tokenizer.bos_token_id, *row, tokenizer.eos_token_id] for row in ids]}

    data = Dataset.from_dict({"text": lines}).map(encode, batched=True, remove_columns=["text"])
    model = build_model(config, len(tokenizer), tokenizer)
    scratch = tempfile.TemporaryDirectory()  # the Trainer wants an output_dir; nothing is saved there
    args = TrainingArguments(
        output_dir=scratch.name,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(200, config.max_steps // 10),
        weight_decay=0.01,
        logging_steps=max(1, config.max_steps // 100),
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collator)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    scratch.cleanup()
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)  # half the size; loads as float32
    tokenizer.save_pretrained(out)
    losses = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    with open(out / "loss.csv", "w", newline="") as f:
        csv.writer(f).writerows([("step", "loss"), *losses])
    summary = {
        "config": asdict(config),
        "lines": len(lines),
        "vocab": len(tokenizer),
        "first_loss": losses[0][1],
        "final_loss": losses[-1][1],
        "train_seconds": round(seconds),
    }
    (out / "world.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="toy-model", help="output directory (default: %(default)s)")
    p.add_argument("--steps", type=int, default=ToyConfig.max_steps, help="training steps (default: %(default)s)")
    p.add_argument("--seed", type=int, default=ToyConfig.seed, help="world and training seed")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = ToyConfig(seed=args.seed, max_steps=args.steps)
    summary = train(config, Path(args.out))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
