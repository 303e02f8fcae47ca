"""GPU memory of a model job, estimated from its parts, and the batch sizes that fit one GPU.

A model job runs on ONE GPU (``resources.gpus`` never asks for more): the loader puts the whole
model on one device, so a job that asked for two would hold one idle. What varies with a job's
batch is fitted to the GPU instead. The peak is the sum of the terms below, each a tensor (or a
set of tensors) whose size the job's shapes fix (bytes; ``tests/test_memory.py`` checks the
cache and logits terms against the tensors a model really allocates):

- ``weights``: parameters x bytes of the dtype;
- ``kv_cache(rows, tokens)``: keys and values of every layer, 2 x layers x kv heads x head dim
  per token and row (the static cache of decoding is allocated for prefix + max_new_tokens);
- ``logits(rows, positions)``: the LM head's output in the model's dtype plus its float32 copy
  (generation's next-token scores, scoring's log-softmax);
- ``activations(rows, tokens)``: one decoder layer's live tensors in a forward pass (the gated
  MLP's two intermediate tensors and four hidden-width ones); layers run one after another;
- ``saved_for_backward(rows, tokens)``: what autograd keeps of every layer for integrated
  gradients' backward pass (the same tensors, for all layers).

Torch-free: the dimensions come from a checkpoint's text config (a dict of config.json, or
``model.config.text_config.to_dict()`` in a job) or ``PAPER_TEXT_CONFIGS``.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

# the decoder's published text configs (config.json of each hub checkpoint; the same values as
# workload.PAPER_GEOMETRY): what the memory terms need
PAPER_TEXT_CONFIGS = {
    # llava-hf/llava-1.5-7b-hf (Vicuna-7B v1.5)
    "llava-hf/llava-1.5-7b-hf": dict(
        num_hidden_layers=32,
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=32,
        intermediate_size=11008,
        vocab_size=32064,
    ),
    # llava-hf/llava-1.5-13b-hf (Vicuna-13B v1.5)
    "llava-hf/llava-1.5-13b-hf": dict(
        num_hidden_layers=40,
        hidden_size=5120,
        num_attention_heads=40,
        num_key_value_heads=40,
        intermediate_size=13824,
        vocab_size=32064,
    ),
    # OpenGVLab/InternVL3_5-8B-HF (Qwen3-8B: 32 query heads, 8 key/value heads, head dim 128)
    "OpenGVLab/InternVL3_5-8B-HF": dict(
        num_hidden_layers=36,
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=12288,
        vocab_size=151936,
    ),
    # Qwen/Qwen2.5-VL-7B-Instruct (28 query heads, 4 key/value heads)
    "Qwen/Qwen2.5-VL-7B-Instruct": dict(
        num_hidden_layers=28,
        hidden_size=3584,
        num_attention_heads=28,
        num_key_value_heads=4,
        intermediate_size=18944,
        vocab_size=152064,
    ),
}


@dataclass(frozen=True)
class Dims:
    """What a job's GPU memory depends on: the decoder's shapes, the weights and the dtype."""

    layers: int
    hidden: int
    kv_width: int  # key/value heads x head dim
    intermediate: int
    vocab: int
    params: float
    dtype_bytes: int

    @classmethod
    def of_text_config(cls, t: dict, params: float, dtype: str) -> Dims:
        head_dim = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
        kv_heads = t.get("num_key_value_heads") or t["num_attention_heads"]
        return cls(
            t["num_hidden_layers"],
            t["hidden_size"],
            kv_heads * head_dim,
            t["intermediate_size"],
            t["vocab_size"],
            params,
            BYTES[dtype],
        )

    @property
    def weights(self) -> float:
        return self.params * self.dtype_bytes

    def kv_cache(self, rows: int, tokens: int) -> float:
        return 2 * self.layers * self.kv_width * tokens * rows * self.dtype_bytes

    def logits(self, rows: int, positions: int) -> float:
        return rows * positions * self.vocab * (self.dtype_bytes + 4)

    def activations(self, rows: int, tokens: int) -> float:
        return rows * tokens * (2 * self.intermediate + 4 * self.hidden) * self.dtype_bytes

    def saved_for_backward(self, rows: int, tokens: int) -> float:
        return self.layers * self.activations(rows, tokens)

    def peak(
        self, rows: int, prefix: int, answer: int, positions: int, backward: bool = False
    ) -> float:
        """Bytes at the peak of a pass of ``rows`` sequences of ``prefix + answer`` tokens that
        keeps a cache of all of them and computes logits at ``positions`` per row."""
        tokens = prefix + answer
        transient = max(self.logits(rows, positions), self.activations(rows, tokens))
        extra = self.saved_for_backward(rows, tokens) if backward else 0.0
        return self.weights + self.kv_cache(rows, tokens) + transient + extra


def fit_rows(dims: Dims, budget: float, wanted: int, **pass_shape) -> int:
    """The most rows, at most ``wanted``, whose ``Dims.peak`` fits ``budget`` bytes; an error
    naming the bytes when not even one fits."""
    if dims.peak(1, **pass_shape) > budget:
        raise MemoryError(
            f"one row needs {dims.peak(1, **pass_shape) / 2**30:.1f} GiB "
            f"({dims.weights / 2**30:.1f} GiB of weights), more than the "
            f"{budget / 2**30:.1f} GiB of one GPU the job may use"
        )
    lo, hi = 1, max(1, wanted)
    while lo < hi:  # the peak grows with the rows: the largest fitting count by bisection
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if dims.peak(mid, **pass_shape) <= budget else (lo, mid - 1)
    return lo


def fit_job(
    dims: Dims,
    budget: float,
    batch_size: int,
    settings: dict,
    prefix: int,
    answer: int,
    max_new_tokens: int,
) -> dict:
    """The sizes of one experiment job that fit ``budget`` bytes: ``batch_size`` (rows generated
    or scored together), and where the experiment has them ``internal_batch_size`` (integrated
    gradients' interpolation steps per backward pass) and ``heads_per_batch`` (mediation's heads
    patched side by side). ``prefix``: the longest prompt in tokens; ``answer``: the longest
    gold answer; ``settings``: the experiment's."""
    out = {
        "batch_size": fit_rows(
            dims, budget, batch_size, prefix=prefix, answer=max_new_tokens, positions=answer
        )
    }
    ig = settings.get("integrated_gradients")
    if ig:
        steps = ig["steps"]
        wanted = ig.get("internal_batch_size") or (
            max(steps.values()) if isinstance(steps, dict) else steps
        )
        out["internal_batch_size"] = fit_rows(
            dims, budget, wanted, prefix=prefix, answer=answer, positions=answer, backward=True
        )
    if "heads_per_batch" in settings:
        out["heads_per_batch"] = fit_rows(
            dims,
            budget,
            settings["heads_per_batch"],
            prefix=prefix,
            answer=answer,
            positions=answer,
        )
    return out


def fit_job_on_gpu(
    adapter,
    batch_size: int,
    settings: dict,
    image_sizes: list[tuple[int, int]],
    max_new_tokens: int,
    reserved_bytes: float = 0.0,
    fraction: float = 0.9,
) -> dict:
    """``fit_job`` for a loaded adapter on its GPU: the model's own config and parameter count,
    ``fraction`` of the device's memory less ``reserved_bytes`` (the vision cache), the longest
    prompt among ``image_sizes`` (visual tokens + the question's text) and answers of
    ``workload.TEXT``'s longest. Called by model jobs only when the model is on a GPU."""
    import torch

    from ..workload import TEXT

    model = adapter.model
    params = sum(p.numel() for p in model.parameters())
    text = model.config.text_config.to_dict()
    dims = Dims.of_text_config(text, params, str(model.dtype).removeprefix("torch."))
    budget = torch.cuda.get_device_properties(adapter.device).total_memory * fraction
    visual = max((adapter.layout(w, h).n_tokens for w, h in image_sizes), default=0)
    prefix = visual + TEXT["template"] + max(TEXT["question"].values())
    answer = max(TEXT["answer"].values())
    return fit_job(
        dims, budget - reserved_bytes, batch_size, settings, prefix, answer, max_new_tokens
    )
