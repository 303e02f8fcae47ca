"""Train a toy VLM (LLaVA or InternVL architecture) from scratch on the synthetic shapes.

Two stages, like a real VLM built on a pretrained vision encoder:

1. ``vision_steps`` steps on images alone: the vision tower and projector learn an auxiliary
   per-visual-token target: which category the token's cell shows (or background), where the
   cell lies, and, on object cells, the object's box (both in the frame of the token's view).
2. ``steps`` steps on the answers: each step takes ``batch_images`` images and asks each
   ``questions_per_image`` questions (localization, list, binary) in the family's own prompt and
   answer format; the vision tower runs once per image for all its sequences. Loss: next-token
   cross-entropy on the answer tokens, plus the auxiliary loss, plus (``number_weight``) a
   regression of each box coordinate from the LLM's last hidden state wherever it writes that
   coordinate's digits: cross-entropy says only that a digit is wrong, the regression also how far
   off the value is.

The paper finds such positional signals at the projection of the real models (sec. 3.2); a
from-scratch toy gets them much sooner when asked for them. The auxiliary heads are dropped after
training: the checkpoint is a plain HF model.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data.shapes import ShapesSpec
from ..models import load_adapter
from ..models.base import pad_rows
from ..models.tiny import BUILDERS
from ..tasks import BINARY_PROMPT, LIST_PROMPT, LOCALIZATION_PROMPT, box_number_spans
from .data import PoolImage, make_pool, questions

log = logging.getLogger(__name__)


@dataclass
class ToyConfig:
    family: str = "llava"
    seed: int = 0
    steps: int = 6000
    vision_steps: int = 0  # first stage: vision tower + projector on the auxiliary loss alone
    vision_batch_images: int = 48
    vision_lr: float = 2e-3
    vision_lr_scale: float = (
        0.0  # stage 2: the tower's lr relative to the rest; 0 freezes it (as LLaVA does)
    )
    batch_images: int = 12
    questions_per_image: int = 4
    localization_questions: int = 2  # at most this many of them (distinct unique objects)
    lr: float = 1.5e-3
    warmup: int = 300
    weight_decay: float = 0.01
    aux_weight: float = 1.0
    box_weight: float = 5.0
    # what the auxiliary loss teaches each visual token (stage 1 and 2): its cell's category and,
    # by default, the cell's position and the object's box. ("category",) alone leaves the LLM to
    # find the box from WHICH tokens show the object: the container toy (docs/toy-models.md)
    aux_targets: tuple = ("category", "xy", "box")
    # False: the vision tower's position embeddings are zero and frozen, so a visual token cannot
    # know where its patch lies (the tower is then permutation-equivariant over patches)
    vision_position_embeddings: bool = True
    # stage 2: a linear head on each visual token's hidden state after this many LLM decoder
    # layers predicts the token's cell (x, y). 0 is off. With the tower's position embeddings off
    # the position must then be derived inside the LLM from the token's place in the sequence:
    # the container mechanism, taught early instead of left to the answer loss
    llm_position_layer: int = 0
    llm_position_weight: float = 10.0
    number_weight: float = (
        0.0  # stage 2: the box coordinates regressed from the LLM's hidden states (0: off)
    )
    pool_images: int = 12000
    image_size: int = 192
    patch_size: int = 24
    max_tiles: int = 6
    vision: dict = field(
        default_factory=lambda: {
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
        }
    )
    text: dict = field(
        default_factory=lambda: {
            "hidden_size": 128,
            "intermediate_size": 512,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
        }
    )
    vocab_size: int = 512
    colours: tuple = ("red", "green", "blue", "yellow")
    shapes: tuple = ("circle", "square", "triangle")
    eval_every: int = 500
    eval_samples: int = 48
    threads: int = 1

    @property
    def family_options(self) -> dict:
        """Builder arguments only one family has: InternVL's tile cap."""
        return {"max_tiles": self.max_tiles} if self.family == "internvl" else {}


def corpus(categories: list[str], n: int = 64) -> list[str]:
    """Texts the tokenizer is trained on: every prompt and typical answers."""
    texts = [LOCALIZATION_PROMPT.format(category=c) for c in categories]
    texts += [BINARY_PROMPT.format(category=c) for c in categories]
    texts += [
        LIST_PROMPT.format(categories=", ".join(categories)),
        ", ".join(categories),
        "Yes",
        "No",
    ]
    return texts * n


@dataclass
class AnswerBatch:
    """Questions about a few images. Every question of an image shares its prompt up to the last
    image token (the image prefix), which is run once per image; the rest of the prompt and the
    answer (the suffix) are one row per question."""

    prefix_ids: torch.Tensor  # (images, Lp), left-padded
    prefix_att: torch.Tensor
    suffix_ids: torch.Tensor  # (questions, Ls), right-padded
    suffix_att: torch.Tensor
    labels: torch.Tensor  # (questions, Ls): answer tokens, -100 elsewhere
    numbers: (
        torch.Tensor
    )  # (questions, Ls): on a box coordinate's tokens its value in 0..1, NaN elsewhere
    image_of: torch.Tensor  # (questions,): the image each question is about
    pixel_values: torch.Tensor
    targets: dict

    def full_sequences(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, attention mask, labels) of each question's whole sequence, left-padded prefix
        included: the naive layout that runs the image prefix once per question."""
        rows = self.image_of
        ids = torch.cat([self.prefix_ids[rows], self.suffix_ids], 1)
        att = torch.cat([self.prefix_att[rows], self.suffix_att], 1)
        labels = torch.cat([torch.full_like(self.prefix_ids[rows], -100), self.labels], 1)
        return ids, att, labels


class Batcher:
    def __init__(self, adapter, pool: list[PoolImage], categories: list[str], seed: int):
        self.adapter, self.pool, self.categories = adapter, pool, categories
        self.rng = np.random.default_rng(seed)
        self.tok = adapter.tokenizer
        self._ids: dict[tuple, list[int]] = {}
        self.eos = self.tok.eos_token_id
        self.pad = self.tok.pad_token_id
        self.mean = torch.tensor(adapter.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(adapter.image_std).view(1, 3, 1, 1)

    def ids(self, text: str, special: bool) -> list[int]:
        key = (text, special)
        if key not in self._ids:
            self._ids[key] = self.tok(text, add_special_tokens=special)["input_ids"]
        return self._ids[key]

    def answer_tokens(self, prompt: str, text: str) -> tuple[list[int], list[float]]:
        """Token ids of an answer after its prompt, as every scored sequence is built
        (``Adapter.reply_tokens``: prompt and answer tokenized together), and per token the
        value (over the family's ``box_scale``) of the box coordinate the token writes, NaN on
        other tokens. Not cached: box answers are nearly all different."""
        _, ids, offsets = self.adapter.reply_tokens(prompt, text)
        spans = [(a, b, v / self.adapter.box_scale) for a, b, v in box_number_spans(text)]
        values = [next((v for a, b, v in spans if a <= s < e <= b), math.nan) for s, e in offsets]
        return ids, values

    def __call__(self, n_images: int, n_questions: int = 4, n_localization: int = 2) -> AnswerBatch:
        items = self.sample(n_images)
        prefixes, suffixes, labels, numbers, image_of = [], [], [], [], []
        for j, item in enumerate(items):
            for prompt_text, answer in questions(
                self.adapter, item, self.categories, self.rng, n_questions, n_localization
            ):
                prompt = self.adapter.prompt(prompt_text, item.n_tokens)
                p = self.ids(prompt, True)
                a, num = self.answer_tokens(prompt, self.adapter.answer_prefix + answer)
                a, num = a + [self.eos], num + [math.nan]
                cut = self.adapter.image_prefix_length(p)
                if len(prefixes) == j:
                    prefixes.append(p[:cut])
                elif prefixes[j] != p[:cut]:
                    raise RuntimeError("the questions of one image do not share the image prefix")
                suffixes.append(p[cut:] + a)
                labels.append([-100] * (len(p) - cut) + a)
                numbers.append([math.nan] * (len(p) - cut) + num)
                image_of.append(j)
        # prefixes left-padded (their last token is the last image token, so the suffix continues
        # it), suffixes right-padded
        prefix_ids, prefix_att = pad_rows(prefixes, self.pad)
        suffix_ids, suffix_att = pad_rows(suffixes, self.pad, left=False)
        lab = torch.full(suffix_ids.shape, -100)
        num = torch.full(suffix_ids.shape, math.nan)
        for r, (lb, nb) in enumerate(zip(labels, numbers, strict=True)):
            lab[r, : len(lb)], num[r, : len(nb)] = torch.tensor(lb), torch.tensor(nb)
        return AnswerBatch(
            prefix_ids,
            prefix_att,
            suffix_ids,
            suffix_att,
            lab,
            num,
            torch.tensor(image_of),
            *self.images(items),
        )

    def sample(self, n_images: int) -> list[PoolImage]:
        return [self.pool[i] for i in self.rng.choice(len(self.pool), size=n_images, replace=False)]

    def images(self, items: list[PoolImage]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pixel values of every view, and the per-visual-token targets of the auxiliary loss."""
        views = (
            torch.from_numpy(np.concatenate([it.views for it in items])).permute(0, 3, 1, 2).float()
            / 255
        )
        pixel_values = (views - self.mean) / self.std
        # per token: the first category its cell shows, or "background" (last class)
        labels = np.concatenate([it.token_labels for it in items])
        targets = {
            "category": torch.from_numpy(
                np.where(labels.any(1), labels.argmax(1), labels.shape[1])
            ),
            "xy": torch.from_numpy(np.concatenate([it.token_xy for it in items])),
            "box": torch.from_numpy(np.concatenate([it.token_box for it in items])),
        }
        return pixel_values, targets


def aux_head(adapter, n_categories: int) -> torch.nn.Linear:
    """The stage-1 head on each projected visual token: category-or-background logits, cell
    (x, y), object box (x1, y1, x2, y2); ``aux_outputs`` splits what it gives."""
    return torch.nn.Linear(adapter.model.config.text_config.hidden_size, n_categories + 1 + 2 + 4)


def aux_outputs(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(category logits, cell xy in 0..1, box in 0..1) of ``aux_head``'s output."""
    n_cls = out.shape[-1] - 6
    return (
        out[..., :n_cls],
        torch.sigmoid(out[..., n_cls : n_cls + 2]),
        torch.sigmoid(out[..., n_cls + 2 :]),
    )


AUX_TARGETS = ("category", "xy", "box")


def aux_loss(
    head,
    feats: torch.Tensor,
    targets: dict,
    position_weight: float = 10.0,
    box_weight: float = 5.0,
    use: tuple = AUX_TARGETS,
) -> torch.Tensor:
    """Per visual token: which category its cell shows (or background), where the cell lies, and
    (on object cells) the object's box, both in the frame of the token's view (see ``make_pool``).
    ``use`` names the terms that count (the others are not computed)."""
    unknown = set(use) - set(AUX_TARGETS)
    if unknown or "category" not in use:
        raise ValueError(f"aux_targets must hold 'category' and only {AUX_TARGETS}, got {use}")
    logits, xy, box = aux_outputs(head(feats))
    loss = F.cross_entropy(logits, targets["category"])
    if "xy" in use:
        loss = loss + position_weight * F.mse_loss(xy, targets["xy"])
    on_object = ~torch.isnan(targets["box"][:, 0])
    if "box" in use and on_object.any():
        loss = loss + box_weight * F.l1_loss(box[on_object], targets["box"][on_object].clamp(0, 1))
    return loss


def cosine_lr(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _positions(att: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
    """RoPE positions that skip left padding."""
    return (start + att.cumsum(-1) - 1).clamp(min=0)


def answer_hidden(
    adapter,
    batch: AnswerBatch,
    feats: torch.Tensor,
    share_prefix: bool = True,
    visual_layer: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The LLM's last hidden states over each question's sequence, with the sequence's labels and
    number targets aligned to them, and (``visual_layer`` > 0) each visual token's hidden state
    after that many decoder layers, in ``feats``' order (else None).

    ``share_prefix``: run each image's prefix (system prompt and visual tokens, most of the
    sequence) once and let all its questions attend to its key/value cache, instead of once per
    question. Same loss up to float rounding (tests/test_toy_training.py), about half the compute.
    """
    lm, embed = adapter.language_model, adapter.model.get_input_embeddings()
    image_token = adapter.image_token_id
    if visual_layer and not share_prefix:
        raise ValueError("visual_layer needs share_prefix (each image's prefix run once)")
    visual = None
    if share_prefix:
        on_image = batch.prefix_ids == image_token
        prefix = embed(batch.prefix_ids).masked_scatter(
            on_image[..., None], feats.to(embed.weight.dtype)
        )
        out = lm(
            inputs_embeds=prefix,
            attention_mask=batch.prefix_att,
            position_ids=_positions(batch.prefix_att),
            use_cache=True,
            output_hidden_states=bool(visual_layer),
        )
        cache = out.past_key_values
        if visual_layer:  # hidden_states[0] is the embeddings, [l] the output of layer l
            visual = out.hidden_states[visual_layer][on_image]
        cache.reorder_cache(
            batch.image_of
        )  # one copy of its image's cache per question (differentiable)
        rows, lp = batch.prefix_att[batch.image_of], batch.prefix_ids.shape[1]
        hidden = lm(
            inputs_embeds=embed(batch.suffix_ids),
            attention_mask=torch.cat([rows, batch.suffix_att], 1),
            position_ids=_positions(batch.suffix_att, rows.sum(1, keepdim=True)),
            past_key_values=cache,
            cache_position=torch.arange(lp, lp + batch.suffix_ids.shape[1]),
            use_cache=True,
        ).last_hidden_state
        labels, numbers = batch.labels, batch.numbers
    else:
        ids, att, labels = batch.full_sequences()
        per_question = feats.split([int(n) for n in (batch.prefix_ids == image_token).sum(1)])
        embeds = embed(ids).masked_scatter(
            (ids == image_token)[..., None], torch.cat([per_question[j] for j in batch.image_of])
        )
        hidden = lm(
            inputs_embeds=embeds, attention_mask=att, position_ids=_positions(att)
        ).last_hidden_state
        numbers = torch.cat(
            [torch.full(batch.prefix_ids[batch.image_of].shape, math.nan), batch.numbers], 1
        )
    return hidden, labels, numbers, visual


def token_loss(adapter, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens."""
    logits = adapter.model.lm_head(hidden[:, :-1])
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def answer_loss(
    adapter, batch: AnswerBatch, feats: torch.Tensor, share_prefix: bool = True
) -> torch.Tensor:
    """Next-token cross-entropy on the answer tokens (``answer_hidden``'s ``share_prefix``)."""
    hidden, labels, _, _ = answer_hidden(adapter, batch, feats, share_prefix)
    return token_loss(adapter, hidden, labels)


def number_loss(head: torch.nn.Linear, hidden: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
    """L1 error of the box coordinate (0..1) that ``head`` reads from the hidden state at each
    position whose next token is one of that coordinate's digits: the LLM must carry the value
    it is writing, and learns how far off it is, which the digits' cross-entropy does not say."""
    target = numbers[:, 1:]
    on_number = ~torch.isnan(target)
    if not on_number.any():
        return hidden.sum() * 0.0
    return F.l1_loss(torch.sigmoid(head(hidden[:, :-1][on_number])[:, 0]), target[on_number])


def llm_position_loss(
    head: torch.nn.Linear, visual: torch.Tensor, targets: dict, weight: float = 10.0
) -> torch.Tensor:
    """Weighted MSE of each visual token's cell (x, y in 0..1) read by ``head`` from its hidden
    state inside the LLM (``answer_hidden``'s ``visual_layer``)."""
    return weight * F.mse_loss(torch.sigmoid(head(visual)), targets["xy"])


def train_step(
    adapter,
    head,
    batch: AnswerBatch,
    box_weight: float = 5.0,
    share_prefix: bool = True,
    number_head: torch.nn.Linear | None = None,
    aux_targets: tuple = AUX_TARGETS,
    position_head: torch.nn.Linear | None = None,
    position_layer: int = 0,
    position_weight: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(answer cross-entropy, auxiliary loss, number loss: 0 without ``number_head``, LLM-layer
    position loss: 0 without ``position_head``)."""
    feats = adapter.image_features(batch.pixel_values)  # each image once
    layer = position_layer if position_head is not None else 0
    hidden, labels, numbers, visual = answer_hidden(adapter, batch, feats, share_prefix, layer)
    num = number_loss(number_head, hidden, numbers) if number_head is not None else torch.zeros(())
    pos = (
        llm_position_loss(position_head, visual, batch.targets, position_weight)
        if visual is not None
        else torch.zeros(())
    )
    return (
        token_loss(adapter, hidden, labels),
        aux_loss(head, feats, batch.targets, box_weight=box_weight, use=aux_targets),
        num,
        pos,
    )


def vision_step(
    cfg: ToyConfig, adapter, head, batcher: Batcher, opt, params: list, step: int
) -> float:
    """One stage-1 step: the tower and projector on the auxiliary loss alone; returns the loss."""
    for g in opt.param_groups:
        g["lr"] = cosine_lr(step, cfg.vision_steps, cfg.vision_lr, cfg.warmup)
    pixel_values, targets = batcher.images(batcher.sample(cfg.vision_batch_images))
    loss = aux_loss(
        head,
        adapter.image_features(pixel_values),
        targets,
        box_weight=cfg.box_weight,
        use=tuple(cfg.aux_targets),
    )
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss.item()


def report(history: list[dict], row: dict, progress: bool) -> None:
    history.append(row)
    log.info("%s", row)
    if progress:
        print(
            json.dumps(
                {k: v if isinstance(v, str) else round(float(v), 4) for k, v in row.items()}
            ),
            flush=True,
        )


def build_untrained(cfg: ToyConfig, out_dir: Path):
    """The randomly initialised model of ``cfg`` (a pure function of its seed), saved and loaded."""
    shutil.rmtree(out_dir, ignore_errors=True)
    cats = ShapesSpec(colours=tuple(cfg.colours), shapes=tuple(cfg.shapes)).categories
    BUILDERS[cfg.family](
        out_dir,
        seed=cfg.seed,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        vision=cfg.vision,
        text=cfg.text,
        corpus=corpus(cats),
        vocab_size=cfg.vocab_size,
        system_prompt="",
        **cfg.family_options,
    )
    adapter = load_adapter(
        cfg.family, out_dir, dtype="float32", device="cpu", max_tiles=cfg.max_tiles
    )
    if not cfg.vision_position_embeddings:
        without_position_embeddings(adapter.vision_tower)
    return adapter


def without_position_embeddings(tower: torch.nn.Module) -> int:
    """Zero and freeze every position embedding of a vision tower (CLIP's ``position_embedding``,
    InternViT's ``position_embeddings``); returns how many were found (an error if none: a
    tower whose embeddings this misses would keep knowing where each patch lies)."""
    found = 0
    for name, module in tower.named_modules():
        if name.endswith("position_embedding") and isinstance(module, torch.nn.Embedding):
            module.weight.data.zero_()
            module.weight.requires_grad_(False)
            found += 1
    for name, param in tower.named_parameters():
        if name.endswith("position_embeddings"):
            param.data.zero_()
            param.requires_grad_(False)
            found += 1
    if not found:
        raise ValueError("no position embedding found in the vision tower")
    return found


def _extra_heads(cfg: ToyConfig, adapter, n_categories: int) -> tuple:
    """The training-only heads on top of the model, built in a fixed order (the seeded draws of
    their weights): the visual tokens' auxiliary head, the box numbers' head (``number_weight``)
    and the position head inside the LLM (``llm_position_layer``)."""
    text = adapter.model.config.text_config
    head = aux_head(adapter, n_categories)
    number_head = torch.nn.Linear(text.hidden_size, 1) if cfg.number_weight > 0 else None
    if not 0 <= cfg.llm_position_layer <= text.num_hidden_layers:
        raise ValueError(
            f"llm_position_layer {cfg.llm_position_layer} is not between 0 and the LLM's "
            f"{text.num_hidden_layers} layers"
        )
    position_head = torch.nn.Linear(text.hidden_size, 2) if cfg.llm_position_layer else None
    return head, number_head, position_head


def _vision_stage(cfg, adapter, head, batcher, params, history, t0, progress) -> None:
    """Stage 1, like a real VLM's pretrained vision encoder: the tower first learns, cheaply and
    on many images, what the toy's visual tokens must carry (category, cell, object box)."""
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, weight_decay=cfg.weight_decay)
    running = []
    for step in range(cfg.vision_steps):
        running.append(vision_step(cfg, adapter, head, batcher, opt, params, step))
        if (step + 1) % 50 == 0 or step + 1 == cfg.vision_steps:
            row = {
                "stage": "vision",
                "step": step + 1,
                "seconds": time.perf_counter() - t0,
                "lm_loss": np.nan,
                "aux_loss": float(np.mean(running)),
                "lr": opt.param_groups[0]["lr"],
            }
            running = []
            report(history, row, progress)


def _answer_optimizer(cfg: ToyConfig, adapter, params: list) -> torch.optim.Optimizer:
    """Stage 2's optimizer: the pretrained tower is frozen or slowed down, so the first, large
    gradients of the answer loss do not wash out what it learned."""
    tower = list(adapter.vision_tower.parameters())
    in_tower = {id(p) for p in tower}
    groups = [{"params": [p for p in params if id(p) not in in_tower], "scale": 1.0}]
    if cfg.vision_lr_scale > 0:
        groups.append({"params": tower, "scale": cfg.vision_lr_scale})
    else:
        for p in tower:
            p.requires_grad_(False)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _answer_stage(cfg, adapter, heads, batcher, params, init, held_out, history, t0, progress):
    """Stage 2: the answers' loss (with the auxiliary, number and position losses), evaluated on
    the held-out set every ``eval_every`` steps, the checkpoint so far saved in ``init``."""
    model, (head, number_head, position_head) = adapter.model, heads
    opt = _answer_optimizer(cfg, adapter, params)
    running = []
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = g["scale"] * cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        batch = batcher(cfg.batch_images, cfg.questions_per_image, cfg.localization_questions)
        lm_loss, aux, num, pos = train_step(
            adapter,
            head,
            batch,
            cfg.box_weight,
            number_head=number_head,
            aux_targets=tuple(cfg.aux_targets),
            position_head=position_head,
            position_layer=cfg.llm_position_layer,
            position_weight=cfg.llm_position_weight,
        )
        loss = lm_loss + cfg.aux_weight * aux + cfg.number_weight * num + pos
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running.append((lm_loss.item(), aux.item(), num.item(), pos.item()))
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            lm, aux_mean, num_mean, pos_mean = np.mean(running, axis=0)
            running = []
            row = {
                "stage": "answers",
                "step": cfg.vision_steps + step + 1,
                "seconds": time.perf_counter() - t0,
                "lm_loss": lm,
                "aux_loss": aux_mean,
                "number_loss": num_mean,
                "llm_position_loss": pos_mean,
                "lr": opt.param_groups[0]["lr"],
            }
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
                model.eval()
                row.update(held_out(adapter))
                model.train()
                model.save_pretrained(init)  # a resumable look at progress
            report(history, row, progress)


def train(cfg: ToyConfig, out_dir: str | Path, held_out, progress: bool = True) -> pd.DataFrame:
    """Build, train and save a toy model in ``out_dir``; returns the training history.

    ``held_out(adapter) -> dict`` evaluates the model in its current state (called every
    ``eval_every`` steps and at the end).
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(out_dir)
    spec = ShapesSpec(colours=tuple(cfg.colours), shapes=tuple(cfg.shapes))
    init = out.with_name(out.name + ".init")
    adapter = build_untrained(cfg, init)
    model = adapter.model
    heads = _extra_heads(cfg, adapter, len(spec.categories))
    pool = make_pool(adapter, spec, cfg.pool_images, cfg.seed, progress)
    batcher = Batcher(adapter, pool, spec.categories, cfg.seed + 1)
    params = list(model.parameters())
    for h in heads:  # the aux head, then the number head, then the position head
        params += list(h.parameters()) if h is not None else []

    history, t0 = [], time.perf_counter()
    model.train()
    if cfg.vision_steps:
        _vision_stage(cfg, adapter, heads[0], batcher, params, history, t0, progress)
    _answer_stage(cfg, adapter, heads, batcher, params, init, held_out, history, t0, progress)
    model.eval()
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(init, out)
    model.save_pretrained(out)
    shutil.rmtree(init, ignore_errors=True)
    (out / "training_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    hist = pd.DataFrame(history)
    hist.to_csv(out / "training_history.tsv", sep="\t", index=False)
    return hist
