"""The necessary FLOPs of an experiment's model work on its REAL token counts: the yardstick of
``vlmloc.workload`` (``Geometry.decoder``, ``Geometry.vision``; the per-pass formula is checked
against torch's FLOP counter in tests/test_flops.py and tests/test_workload.py) applied to the
prompts as the runner splits them and the answers as they were generated. ``scripts/benchmark.py``
divides it by a fast path's wall time, ``scripts/demo_floor.py`` by a finished run's jobs'."""

from __future__ import annotations

import dataclasses

import pandas as pd

from ..tasks import task_prompt
from ..workload import Geometry
from .base import ShardJob, shares_prefix
from .mediation import pair_sequence


class Flops:
    """The yardstick of ``vlmloc.workload`` (``Geometry.decoder``, ``Geometry.vision``) on this
    run's real token counts."""

    def __init__(self, adapter, geometry: Geometry, categories):
        self.adapter, self.g, self.categories = adapter, geometry, categories

    def layout(self, r):
        return self.adapter.layout(int(r["width"]), int(r["height"]))

    def vision(self, r) -> float:
        return dataclasses.replace(self.g, views=len(self.layout(r).views)).vision()

    def split(self, r, text: str) -> tuple[int, int]:
        """(image prefix, the question's tokens after it) of one prompt, as the runner splits it."""
        ids = self.adapter.tokenizer(
            self.adapter.prompt(text, self.layout(r).n_tokens), add_special_tokens=True
        )["input_ids"]
        cut = self.adapter.image_prefix_length(ids)
        return cut, len(ids) - cut

    def decoded(self, answer: str, truncated: bool, max_new: int) -> int:
        """Decode steps behind one answer: the question's pass gives the first token, each step
        one more, the last one EOS (none after a cut-off answer)."""
        if truncated:
            return max_new - 1
        return min(
            len(self.adapter.tokenizer(answer, add_special_tokens=False)["input_ids"]), max_new - 1
        )

    def generation(self, job: ShardJob, conditions, rows: pd.DataFrame) -> float:
        """Conditions run by ``run_conditions``: every image's views once; its prefix once per run
        of consecutive conditions that share it (as ``run_conditions`` groups them), else once per
        condition; each condition's questions, generated tokens and teacher-forced gold answers."""
        records = {r["sample_id"]: r for r in job.records}
        runs, group = 0, []  # prefix runs: the groups of ``run_conditions``
        for cond in conditions:
            key = lambda c: (c.image, c.tasks, c.score_gold)  # noqa: E731
            if group and not (
                shares_prefix(cond) and shares_prefix(group[0]) and key(cond) == key(group[0])
            ):
                runs, group = runs + 1, []
            group.append(cond)
            if not shares_prefix(cond):
                runs, group = runs + 1, []
        runs += bool(group)
        images = {c.image for c in conditions}
        flops = sum(self.vision(r) for r in records.values()) * len(images)
        prompt = {}
        for r in records.values():
            prefix, _ = self.split(r, task_prompt("localization", r["category"], self.categories))
            flops += runs * self.g.decoder(prefix)
        for row in rows.to_dict("records"):
            r = records[row["sample_id"]]
            key = (row["sample_id"], row["task"])
            if key not in prompt:
                prompt[key] = self.split(
                    r, task_prompt(row["task"], r["category"], self.categories)
                )
            prefix, question = prompt[key]
            flops += self.g.decoder(question, prefix)
            steps = self.decoded(
                row["answer"], bool(row["truncated"]), job.max_new_tokens[row["task"]]
            )
            flops += sum(self.g.decoder(1, prefix + question + i) for i in range(steps))
            if "gold_nll" in row and not pd.isna(row.get("gold_nll")):
                gold = self.adapter.gold_tokens(
                    row["task"], r, task_prompt(row["task"], r["category"], self.categories)
                )
                flops += self.g.decoder(question + len(gold), prefix, logits=len(gold) + 1)
        return flops

    def mediation(self, records, tasks, n_heads: int) -> float:
        """Per pair: both images' views and prefixes once; per task, the question and gold answer
        once for the source, once for the base and once per patched head."""
        flops = 0.0
        for r in records:
            layout = self.layout(r)
            flops += 2 * self.vision(r)
            for k, task in enumerate(tasks):
                text = task_prompt(task, r["category"], self.categories)
                gold = self.adapter.gold_tokens(task, r, text)
                seq = pair_sequence(self.adapter, layout, text, gold)
                if k == 0:
                    flops += 2 * self.g.decoder(seq.prefix)
                flops += (2 + n_heads) * self.g.decoder(
                    len(seq.ids) - seq.prefix, seq.prefix, logits=len(gold) + 1
                )
        return flops

    def probes(self, images, task_text: str) -> float:
        """Per image: its views and its image prefix once (the features at the visual tokens do not
        depend on the text after them)."""
        flops = 0.0
        for im in images:
            r = {"width": im.size[0], "height": im.size[1]}
            flops += self.vision(r) + self.g.decoder(self.split(r, task_text)[0])
        return flops
