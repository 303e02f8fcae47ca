"""Plain references for the experiment layer's fast paths: each does the same computation the
simple way (no batching, no shared image prefix, the stock model's own forward), kept to check
the fast path against (tests) and to time it (``scripts/benchmark.py``). Slow on purpose; the
workflow never runs them. The probes' reference is ``probes.reference``.

- ``run_conditions_naive``: ``base.run_conditions`` as one ``generate`` per sample and task;
- ``mediate_pair_reference``: ``mediation.mediate_pair`` as one full forward per patched head.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..images import open_image
from ..interventions.base import BatchContext, enter
from ..interventions.heads import HeadCapture, HeadPatch
from ..models.base import Adapter, AnswerTokens, ImageLayout
from ..runner import content_nll
from ..tasks import task_prompt
from .base import ShardJob, raw_row, token_counts
from .mediation import every_head, pair_sequence, patch_positions


def run_conditions_naive(
    experiment: str, conditions, job: ShardJob, param_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """The plain reference for ``base.run_conditions``: one ``generate`` per (sample, task), the
    whole prompt each time, no batching and no shared prefix; with ``score_gold``, one more
    forward of the whole prompt and gold answer. Same rows (tests: test_experiment_layer.py,
    test_containerization.py; scripts/benchmark.py)."""
    rows, adapter = [], job.adapter
    for cond in conditions:
        edited = cond.edited if cond.edited is not None else [None] * len(job.samples)
        for q, r in enumerate(job.records):
            image = open_image(r["image_path"] if cond.image == "original" else r["removed_path"])
            for task in cond.tasks:
                prompt = task_prompt(task, r["category"], job.categories)
                enc = adapter.encode([image], [prompt])
                enc.query_ids = [q]  # the intervention's row: this sample's index in the shard
                inputs = {k: v.to(adapter.device) for k, v in enc.inputs.items()}
                with (
                    torch.inference_mode(),
                    enter(cond.intervention, adapter, BatchContext.of(enc)),
                ):
                    ids = adapter.model.generate(
                        **inputs, max_new_tokens=job.max_new_tokens[task], do_sample=False
                    )
                answer = job.runner.decode(ids[0, inputs["input_ids"].shape[1] :])
                more = token_counts(adapter, r, edited[q])
                if cond.score_gold:
                    gold = adapter.gold_tokens(task, r, prompt)
                    gold_ids = torch.tensor([gold.ids], device=adapter.device)
                    full = torch.cat([inputs["input_ids"], gold_ids], 1)
                    images = {  # the image inputs; the per-token ones of the longer ids
                        k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")
                    } | adapter.token_inputs(full)
                    with (
                        torch.inference_mode(),
                        enter(cond.intervention, adapter, BatchContext.of(enc)),
                    ):
                        logits = adapter.model(
                            input_ids=full,
                            attention_mask=torch.ones_like(full),
                            logits_to_keep=len(gold) + 1,
                            **images,
                        ).logits
                    more["gold_nll"] = float(content_nll(logits, gold)[0])
                rows.append(raw_row(experiment, cond, r, task, prompt, answer, more))
    return pd.DataFrame(rows)


@torch.inference_mode()
def mediate_pair_reference(
    adapter: Adapter,
    source_pixels: torch.Tensor,
    base_pixels: torch.Tensor,
    layout: ImageLayout,
    tasks: Sequence[tuple[str, AnswerTokens]],
    positions: str,
    heads: Sequence[tuple[int, int]] | None = None,
) -> list[dict]:
    """The plain reference for ``mediation.mediate_pair``: the stock model's forward on the whole sequence
    (pixels in, its own image merge), once for the source (capturing every head), once for the
    base, and once more for every single head. Same output."""
    model, dev = adapter.model, adapter.device
    heads = list(heads) if heads is not None else every_head(adapter)
    layers = range(adapter.num_layers)
    out = []
    for text, answer in tasks:
        seq = pair_sequence(adapter, layout, text, answer)
        where, ids = patch_positions(seq, positions), seq.ids[None].to(dev)

        def run(pixels, intervention=None, ids=ids, answer=answer):
            inputs = adapter.pixel_inputs([pixels.to(dev)], [layout]) | adapter.token_inputs(
                ids
            )  # the stock model's own inputs
            with enter(intervention, adapter, None):  # logits where the answer is scored only
                logits = model(input_ids=ids, **inputs, logits_to_keep=len(answer) + 1).logits
            return float(content_nll(logits, answer)[0])

        capture = HeadCapture(layers)
        result = {"source": run(source_pixels, capture), "base": run(base_pixels)}
        source = {layer: capture.assemble(layer)[0] for layer in layers}
        patched = [run(base_pixels, HeadPatch(source, [head], where)) for head in heads]
        out.append(result | {"patched": np.array(patched)})
    return out
