"""The shared BPE tokenizer (byte-level BPE trained with Hugging Face `tokenizers`).

One tokenizer serves every backbone, so `onnx/tokenizer.json` is stored once. It adds no special
tokens by itself: the runtime prepends `<s>` to the prompt (docs/contract.md section 2) and stops
at `</s>`. Training text is the corpus, the captions, the questions and responses and the text
instructions of the training split.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]


def train_tokenizer(texts, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


class TextCodec:
    """Token ids for prompts and targets, as the runtime builds them."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        self.bos = _special_id(tok, BOS)
        self.eos = _special_id(tok, EOS)
        self.pad = _special_id(tok, PAD)
        self.vocab_size = tok.get_vocab_size()

    @classmethod
    def load(cls, path: Path) -> "TextCodec":
        return cls(Tokenizer.from_file(str(path)))

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)


def _special_id(tok: Tokenizer, token: str) -> int:
    i = tok.token_to_id(token)
    if i is None:
        raise ValueError(f"the tokenizer has no `{token}` token; train it with `train_tokenizer`")
    return i
