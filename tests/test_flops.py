"""The FLOP yardstick: paper models at their published sizes, forward FLOPs against torch's own
FLOP counter."""

import pytest
import torch
from paper_flops import PUBLISHED_PARAMS_B, DecoderDims, forward_flops, meta_model


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_B))
def test_paper_architectures_have_their_published_sizes(name):
    model = meta_model(name)
    params_b = sum(p.numel() for p in model.parameters()) / 1e9
    assert params_b == pytest.approx(PUBLISHED_PARAMS_B[name], rel=0.01), params_b


@pytest.mark.parametrize("gqa", [False, True])
def test_forward_flops_match_torchs_flop_counter(gqa):
    """A decoder pass (prefix, then a suffix over its cache) counted by torch's FlopCounterMode
    from the modules' own matrix products, to 5%. Eager attention, whose products the counter
    sees (it does not count the CPU flash kernel), computes every key: the dense count;
    ``causal=True`` is the necessary work."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=3,
        num_attention_heads=8,
        num_key_value_heads=2 if gqa else 8,
        vocab_size=1000,
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(cfg).eval()
    dims = DecoderDims.of(model.model, cfg)
    ids = torch.randint(0, 1000, (1, 200))
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            cache = model(ids[:, :160], use_cache=True, logits_to_keep=1).past_key_values
        prefix = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model(ids[:, 160:], past_key_values=cache, logits_to_keep=41)
        suffix = counter.get_total_flops()
    assert forward_flops(dims, 160, causal=False) == pytest.approx(prefix, rel=0.05)
    assert forward_flops(dims, 40, past=160, logits=41, causal=False) == pytest.approx(
        suffix, rel=0.05
    )
    assert forward_flops(dims, 160) < forward_flops(dims, 160, causal=False)
