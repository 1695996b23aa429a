"""Tiny randomly initialised transformer models, saved with save_pretrained.

Built from the transformers config classes with their real processors/tokenizers
(a byte-level BPE vocabulary with no merges, a small WordPiece vocabulary), so the
real loading code (AutoModel, AutoProcessor, ...) runs on them without a network.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers.pre_tokenizers import ByteLevel

WORDS = ("a dog barking puppy noises stock market report piano music slow the of and cat sound "
         "lecture about physics cooking pasta news").split()


def _byte_vocab(specials: list[str], suffix: str = "") -> dict[str, int]:
    alphabet = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for tok in [*specials, *alphabet, *(a + suffix for a in alphabet if suffix)]:
        vocab.setdefault(tok, len(vocab))
    return vocab


def build_bert(d: Path) -> Path:
    import transformers as T

    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS)), *letters, *("##" + c for c in letters),
             ".", ","]
    tok = T.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    cfg = T.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=37, max_position_embeddings=64)
    T.BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(d)
    tok.save_pretrained(d)
    return d


def build_clip(d: Path, image: int = 32) -> Path:
    import transformers as T

    tok = T.CLIPTokenizer(vocab=_byte_vocab(["<|startoftext|>", "<|endoftext|>"], "</w>"), merges=[])
    cfg = T.CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image, patch_size=8),
        projection_dim=16,
    )
    T.CLIPModel(cfg).eval().save_pretrained(d)
    ip = T.CLIPImageProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    T.CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(d)
    return d


def build_clap(d: Path) -> Path:
    import transformers as T

    tok = T.RobertaTokenizer(vocab=_byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), merges=[])
    cfg = T.ClapConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=80, projection_dim=16),
        audio_config=dict(spec_size=64, window_size=4, num_mel_bins=16, patch_embeds_hidden_size=8, depths=[1, 1],
                          num_attention_heads=[2, 2], hidden_size=16, patch_stride=(4, 4), patch_size=4,
                          projection_dim=16, enable_fusion=False),
        projection_dim=16,
    )
    T.ClapModel(cfg).eval().save_pretrained(d)
    # 1 s windows at 16 kHz keep the tiny model's inputs small
    fe = T.ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160, max_length_s=1,
                                fft_window_size=1024, frequency_max=8000)
    T.ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(d)
    return d


def build_ast(d: Path) -> Path:
    import transformers as T

    fe = T.ASTFeatureExtractor(num_mel_bins=16, max_length=64, sampling_rate=16000)
    cfg = T.ASTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      num_mel_bins=16, max_length=64, patch_size=16, frequency_stride=8, time_stride=8)
    T.ASTModel(cfg).eval().save_pretrained(d)
    fe.save_pretrained(d)
    return d


def build_whisper(d: Path) -> Path:
    import transformers as T

    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                "<|notimestamps|>", "<|nocaptions|>", "<|startoflm|>", "<|startofprev|>"]
    tok = T.WhisperTokenizer(vocab=_byte_vocab([]), merges=[])
    tok.add_special_tokens({"additional_special_tokens": specials})
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    eot = ids["<|endoftext|>"]
    cfg = T.WhisperConfig(
        vocab_size=len(tok), num_mel_bins=16, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37,
        max_source_positions=1500, max_target_positions=64, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"], suppress_tokens=[],
        begin_suppress_tokens=list(ids.values()),  # as real Whisper: no end-of-text as the first token
    )
    model = T.WhisperForConditionalGeneration(cfg).eval()
    model.save_pretrained(d)
    model.generation_config.save_pretrained(d)
    fe = T.WhisperFeatureExtractor(feature_size=16, sampling_rate=16000)
    T.WhisperProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(d)
    return d


BUILDERS = {"bert": build_bert, "clip": build_clip, "clap": build_clap, "ast": build_ast, "whisper": build_whisper}
