"""Integrated gradients over the visual embeddings at the LLM input (paper sec. 3.1, iii).

The input is an image's visual tokens after the projector (where the ablation acts), the
baseline is the mean visual embedding at every image position (as Neo et al.), and the target
is the gold answer under teacher forcing: the sum, over the gold answer's TARGET tokens, of
their logit (or log-probability) at the position that predicts them. Targets are the box's
coordinate tokens for localization and the gold class name's tokens in the list answer; never
BOS, brackets or template words. captum's ``IntegratedGradients`` does the path integral. The
completeness gap (sum of attributions - (f(x) - f(baseline))) is kept per sample, since it is
what says the number of steps is enough.

captum's ``riemann_trapezoid`` puts n points 1/(n-1) apart but weights them 1/n (ends 1/2n), so
its sum is (n-1)/n of the trapezoid rule: every attribution is short by exactly 1/n. We rescale
by n/(n-1), which gives the trapezoid rule itself (the token ranking does not change).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .models.base import Adapter, GoldAnswer, ImageLayout
from .tasks import task_prompt

TARGETS = ("logit", "logprob")
IMPORTANCE = ("l1", "l2", "sum")


def gold_answer(adapter: Adapter, task: str, row: dict, present: Sequence[str] = ()) -> GoldAnswer:
    """The gold reply of one sample and its content (target) spans: ``Adapter.gold_answer``,
    the one writer that mediation and head ablation use too."""
    if task not in ("localization", "list"):
        raise ValueError(f"integrated gradients has no target for task {task!r}")
    return adapter.gold_answer(task, row, present)


def target_tokens(
    adapter: Adapter, prompt: str, gold: GoldAnswer
) -> tuple[list[int], torch.Tensor]:
    """The teacher-forced sequence (prompt, then the gold answer's tokens as ``answer_tokens``
    writes them after this prompt for every scoring) and the positions of its CONTENT tokens:
    the targets."""
    prompt_ids = adapter.tokenizer(prompt, add_special_tokens=True)["input_ids"]
    answer = adapter.answer_tokens(gold, prompt)
    positions = [len(prompt_ids) + k for k, content in enumerate(answer.content) if content]
    return positions, torch.tensor(list(prompt_ids) + list(answer.ids))


@contextlib.contextmanager
def frozen(model: torch.nn.Module):
    """Parameters need no gradient for attributions to the inputs (less memory, faster)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)


class AnswerOfVisualTokens:
    """f(visual tokens) for one (image, prompt, gold answer): a batch of visual-token tensors
    (B, n_tokens, hidden) -> (B,) target scores, with everything else of the sequence fixed."""

    def __init__(
        self,
        adapter: Adapter,
        ids: torch.Tensor,
        positions: list[int],
        target: str = "logit",
        layout: ImageLayout | None = None,
    ):
        if target not in TARGETS:
            raise ValueError(f"IG target must be one of {TARGETS}, not {target!r}")
        self.adapter, self.target = adapter, target
        device = adapter.device
        self.image_positions = torch.nonzero(ids == adapter.image_token_id).flatten().to(device)
        safe = ids.masked_fill(ids == adapter.image_token_id, adapter.tokenizer.pad_token_id or 0)
        with torch.no_grad():
            self.embeds = adapter.model.get_input_embeddings()(safe[None].to(device))
        self.positions = torch.tensor(positions, device=device)
        self.target_ids = ids[self.positions.cpu()].to(device)
        self.keep = len(ids) - (min(positions) - 1)  # logits from the first predicting position on
        row = ids[None].to(
            device
        )  # the sequence's position ids (the adapter's: M-RoPE for Qwen2.5-VL)
        self.position_ids = adapter.position_ids(
            row, torch.ones_like(row), [layout] if layout is not None else None
        )

    def __call__(self, visual: torch.Tensor) -> torch.Tensor:
        x = self.embeds.expand(visual.shape[0], -1, -1).clone()
        x[:, self.image_positions] = visual.to(x.dtype)
        pos = self.position_ids.expand(*self.position_ids.shape[:-2], len(x), -1)
        logits = self.adapter.model(
            inputs_embeds=x, position_ids=pos, logits_to_keep=self.keep, use_cache=False
        ).logits.float()  # no key/value cache: nothing continues from this pass
        rows = self.positions - 1 - (x.shape[1] - self.keep)  # position p is predicted at p - 1
        picked = logits[:, rows]
        if self.target == "logprob":
            picked = torch.log_softmax(picked, dim=-1)
        return picked.gather(-1, self.target_ids[None, :, None].expand(len(x), -1, 1))[..., 0].sum(
            -1
        )


@dataclass
class Attribution:
    importance: np.ndarray  # per visual token (n_tokens,)
    delta: float  # sum of attributions - (f(x) - f(baseline)): completeness gap
    f_input: float
    f_baseline: float

    @property
    def relative_gap(self) -> float:
        """|delta| / |f(x) - f(baseline)|; NaN (unknown, not 0) when f does not move."""
        diff = abs(self.f_input - self.f_baseline)
        return abs(self.delta) / diff if diff > 0 else float("nan")


def token_importance(attr: torch.Tensor, how: str = "l1") -> np.ndarray:
    """(n_tokens, hidden) attributions -> one magnitude per token."""
    if how == "l1":
        out = attr.abs().sum(-1)
    elif how == "l2":
        out = attr.norm(dim=-1)
    elif how == "sum":
        out = attr.sum(-1).abs()
    else:
        raise ValueError(f"IG importance must be one of {IMPORTANCE}, not {how!r}")
    return out.double().cpu().numpy()


def integrated_gradients(
    adapter: Adapter,
    pixel_values: torch.Tensor,
    prompt: str,
    gold: GoldAnswer,
    baseline: torch.Tensor,
    steps: int = 64,
    target: str = "logit",
    importance: str = "l1",
    method: str = "riemann_trapezoid",
    internal_batch_size: int | None = None,
    layout: ImageLayout | None = None,
) -> Attribution:
    """IG of one sample's gold-answer target w.r.t. its visual tokens at the LLM input.

    ``prompt`` is the full chat prompt (``adapter.prompt``), ``pixel_values`` the image's views,
    ``layout`` its layout (a family whose positions depend on it, Qwen2.5-VL's, needs it).
    """
    from captum.attr import IntegratedGradients

    positions, ids = target_tokens(adapter, prompt, gold)
    f = AnswerOfVisualTokens(adapter, ids, positions, target, layout)
    with torch.inference_mode(False), torch.enable_grad(), frozen(adapter.model):
        with torch.no_grad():
            visual = adapter.image_features(pixel_values.to(adapter.device, adapter.model.dtype))[
                None
            ]
        base = baseline.to(visual.device, visual.dtype).expand_as(visual).contiguous()
        attr = (
            IntegratedGradients(f)
            .attribute(
                visual,
                baselines=base,
                n_steps=steps,
                method=method,
                internal_batch_size=internal_batch_size or steps,
            )[0]
            .double()
        )
        with torch.no_grad():
            fx, fb = f(torch.cat([visual, base])).tolist()
    if method == "riemann_trapezoid":
        attr = (
            attr * steps / (steps - 1)
        )  # captum's trapezoid weights sum to (n-1)/n (module docstring)
    delta = float(attr.sum()) - (fx - fb)
    return Attribution(token_importance(attr, importance), delta, fx, fb)


def attribute_samples(
    adapter: Adapter,
    pixels: Sequence[torch.Tensor],
    records: Sequence[dict],
    task: str,
    categories: Sequence[str],
    present: Sequence[Sequence[str]],
    baseline: torch.Tensor,
    progress: bool = True,
    **ig,
) -> list[Attribution]:
    """IG for each sample of one task (its prompt as the experiments ask it)."""
    from tqdm import tqdm

    out = []
    items = zip(pixels, records, present, strict=True)
    for px, r, names in tqdm(list(items), desc=f"IG {task}", disable=not progress, mininterval=5):
        layout = adapter.layout(int(r["width"]), int(r["height"]))
        prompt = adapter.prompt(task_prompt(task, r["category"], categories), layout.n_tokens)
        out.append(
            integrated_gradients(
                adapter,
                px,
                prompt,
                gold_answer(adapter, task, r, names),
                baseline,
                layout=layout,
                **ig,
            )
        )
    return out
