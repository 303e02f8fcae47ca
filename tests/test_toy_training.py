"""The toy-model training pieces: the training forward is the model's own forward, the labels
cover exactly the answers, and a short run saves a checkpoint the adapter loads."""

import re

import numpy as np
import torch

from vlmloc.data.shapes import ShapesSpec
from vlmloc.models import load_adapter
from vlmloc.toy.data import make_pool, questions
from vlmloc.toy.train import (
    Batcher,
    ToyConfig,
    answer_hidden,
    answer_loss,
    build_untrained,
    number_loss,
    train,
)

SPEC = ShapesSpec()
TOY_FAMILIES = ("llava", "internvl")  # the families the toys are trained for (not Qwen2.5-VL)


def test_training_forward_is_the_models_forward(adapters):
    for family, a in ((f, adapters[f]) for f in TOY_FAMILIES):
        pool = make_pool(a, SPEC, 4, seed=0, progress=False)
        batch = Batcher(a, pool, SPEC.categories, seed=0)(2, 3)
        ids, att, lab = batch.full_sequences()
        pv, targets = batch.pixel_values, batch.targets
        n = int((batch.prefix_ids == a.image_token_id).sum())  # one label per visual token
        assert (
            targets["category"].shape == (n,)
            and targets["xy"].shape == (n, 2)
            and targets["box"].shape == (n, 4)
        )
        assert ((targets["xy"] >= -0.5) & (targets["xy"] <= 1.5)).all()
        # object cells carry their object's box, background cells none
        on_object = targets["category"] < len(SPEC.categories)
        assert (~torch.isnan(targets["box"][:, 0]) == on_object).all()
        assert ((targets["box"][on_object] >= 0) & (targets["box"][on_object] <= 1)).all()
        with torch.no_grad():
            feats = a.image_features(pv)
            per_image = feats.split([int(k) for k in (batch.prefix_ids == a.image_token_id).sum(1)])
            emb = a.model.get_input_embeddings()(ids).masked_scatter(
                (ids == a.image_token_id)[..., None],
                torch.cat([per_image[j] for j in batch.image_of]),
            )
            positions = (att.cumsum(1) - 1).clamp(min=0)
            mine = a.model.lm_head(
                a.language_model(
                    inputs_embeds=emb, attention_mask=att, position_ids=positions
                ).last_hidden_state
            )
        # row 0 asks about the first picked image, whose views open the pixel batch
        per_view = a.layout(64, 64).views[0].n_tokens  # every view has the same token grid
        first_views = pv[: int((ids[0] == a.image_token_id).sum()) // per_view]
        real = att[0].bool()
        with torch.no_grad():
            ref = a.model(input_ids=ids[:1, real], pixel_values=first_views).logits[0]
        torch.testing.assert_close(mine[0, real], ref, atol=1e-4, rtol=1e-4, msg=family)


def test_shared_image_prefix_gives_the_full_sequence_loss_and_gradient(adapters):
    """The image prefix run once per image, its cache shared by the image's questions: the same
    loss and gradients as running every question's whole sequence (InternVL's prefixes differ in
    length with the tile count, so this also checks the left padding)."""
    for family, a in ((f, adapters[f]) for f in TOY_FAMILIES):
        pool = make_pool(a, SPEC, 6, seed=3, progress=False)
        batch = Batcher(a, pool, SPEC.categories, seed=0)(4, 4)
        assert len(batch.image_of) == 16 and batch.prefix_ids.shape[0] == 4
        if family == "internvl":
            assert len(set(batch.prefix_att.sum(1).tolist())) > 1, (
                "want prefixes of different lengths"
            )
        results = []
        for share in (True, False):
            a.model.zero_grad(set_to_none=True)
            loss = answer_loss(a, batch, a.image_features(batch.pixel_values), share_prefix=share)
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in a.projector.parameters()]))
        a.model.zero_grad(set_to_none=True)
        (l1, g1), (l2, g2) = results
        torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-5, msg=family)
        for x, y in zip(g1, g2, strict=True):
            torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-4, msg=family)


def test_box_targets_are_the_answers_box(adapters):
    """An object cell's box target: on a view of the whole image (LLaVA's padded square,
    InternVL's thumbnail) the box the family writes in its answer; on a tile, that box in the
    tile's own frame, clipped to it."""
    for family, a in ((f, adapters[f]) for f in TOY_FAMILIES):
        checked = {"global": 0, "local": 0}
        for item in make_pool(a, SPEC, 8, seed=2, progress=False):
            w, h = item.size
            owner = np.where(
                item.token_labels.any(1), item.token_labels.argmax(1), -1
            )  # category it is trained to name
            for o in item.objects:
                written = [
                    float(v) for v in re.findall(r"\d+(?:\.\d+)?", a.format_box(o["box"], w, h))
                ]
                answer = np.array(written) / a.box_scale
                x1, y1, x2, y2 = o["box"]
                for v in a.layout(w, h).views:
                    cells = np.arange(v.offset, v.offset + v.rows * v.cols)
                    mine = cells[owner[cells] == o["category"]]
                    if not o["unique"] or not len(mine):
                        continue
                    if v.kind == "global":
                        expected = answer  # the answer text rounds: 0.01 (LLaVA), 0.001 (InternVL)
                    else:
                        rx0, ry0, rx1, ry1 = v.region
                        sx, sy = rx1 - rx0, ry1 - ry0
                        expected = np.clip(
                            [(x1 - rx0) / sx, (y1 - ry0) / sy, (x2 - rx0) / sx, (y2 - ry0) / sy],
                            0,
                            1,
                        )
                    np.testing.assert_allclose(
                        item.token_box[mine], np.broadcast_to(expected, (len(mine), 4)), atol=5.1e-3
                    )
                    checked[v.kind] += len(mine)
        assert checked["global"] > 0, family
        assert (checked["local"] > 0) == (family == "internvl"), (family, checked)


def test_labels_cover_only_the_answers(adapters):
    a = adapters["llava"]
    pool = make_pool(a, SPEC, 3, seed=1, progress=False)
    rng = np.random.default_rng(0)
    qs = questions(a, pool[0], SPEC.categories, rng, n=4)
    assert len(qs) == 4 and any(q.startswith("List all objects") for q, _ in qs)
    ids, att, lab = Batcher(a, pool, SPEC.categories, seed=0)(1, 4).full_sequences()
    for row in range(ids.shape[0]):
        answer = ids[row][lab[row] != -100]
        text = a.tokenizer.decode(answer)
        assert text.endswith(a.tokenizer.eos_token)
        assert (ids[row][lab[row] != -100] != a.image_token_id).all()


def test_short_run_lowers_loss_and_saves_a_loadable_checkpoint(tmp_path):
    small = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    cfg = ToyConfig(
        family="internvl",
        steps=100,
        vision_steps=50,
        vision_batch_images=4,
        batch_images=4,
        pool_images=16,
        image_size=64,
        patch_size=8,
        max_tiles=2,
        vision=small,
        text=small,
        warmup=5,
        lr=3e-3,
        eval_every=50,
        eval_samples=2,
        threads=2,
        number_weight=5.0,
    )
    calls = []
    hist = train(
        cfg,
        tmp_path / "toy",
        held_out=lambda adapter: calls.append(1) or {"loc_score": 0.0},
        progress=False,
    )
    answers = hist[hist["stage"] == "answers"]
    assert answers["lm_loss"].iloc[-1] < answers["lm_loss"].iloc[0]
    assert (answers["number_loss"] > 0).all() and answers["number_loss"].iloc[-1] < answers[
        "number_loss"
    ].iloc[0]
    assert list(hist["stage"]) == ["vision", "answers", "answers"] and list(hist["step"]) == [
        50,
        100,
        150,
    ]
    assert hist["lm_loss"].isna().tolist() == [
        True,
        False,
        False,
    ]  # the vision stage does not see the answers
    assert len(calls) == 2  # evaluated at answer step 50 and at the end
    a = load_adapter("internvl", tmp_path / "toy")
    assert a.system_prompt == "" and a.max_tiles == 2
    assert (tmp_path / "toy" / "training_history.tsv").exists()


def test_frozen_tower_stays_as_built(tmp_path):
    """vision_lr_scale 0: the answer stage trains projector and LLM, never the vision tower."""
    small = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    cfg = ToyConfig(
        family="llava",
        steps=3,
        vision_steps=0,
        batch_images=2,
        pool_images=4,
        image_size=48,
        patch_size=8,
        vision=small,
        text=small,
        warmup=1,
        eval_every=50,
        vision_lr_scale=0.0,
        threads=2,
    )
    train(cfg, tmp_path / "toy", held_out=lambda adapter: {}, progress=False)
    before = build_untrained(cfg, tmp_path / "init").model.state_dict()
    after = load_adapter("llava", tmp_path / "toy").model.state_dict()
    tower = [k for k in before if "vision_tower" in k]
    assert tower and all(torch.equal(before[k], after[k]) for k in tower)
    assert not torch.equal(
        before["model.multi_modal_projector.linear_1.weight"],
        after["model.multi_modal_projector.linear_1.weight"],
    )


def test_number_targets_sit_on_the_box_digits(adapters):
    """Each box coordinate's value (0..1) is the number target of exactly the tokens that write
    it; every other position has none. The shared-prefix and whole-sequence layouts align them
    with the same hidden states, so the number loss is the same in both."""
    for family, a in ((f, adapters[f]) for f in TOY_FAMILIES):
        pool = make_pool(a, SPEC, 6, seed=3, progress=False)
        batch = Batcher(a, pool, SPEC.categories, seed=0)(4, 4, 3)
        seen = 0
        for row in range(len(batch.image_of)):
            has = ~torch.isnan(batch.numbers[row])
            assert (batch.labels[row][has] != -100).all(), family  # numbers only inside the answer
            answer = a.tokenizer.decode(batch.labels[row][batch.labels[row] != -100])
            written = [float(v) / a.box_scale for v in re.findall(r"\d+(?:\.\d+)?", answer)]
            assert len(written) in (0, 4), (family, answer)
            # runs of consecutive tokens with a target: one per coordinate, in the order written
            values = batch.numbers[row].tolist()
            runs = [v for k, v in enumerate(values) if has[k] and (k == 0 or not has[k - 1])]
            assert all(
                values[k] == values[k - 1] for k in range(1, len(values)) if has[k] and has[k - 1]
            ), family
            np.testing.assert_allclose(runs, written, atol=1e-6, err_msg=f"{family}: {answer}")
            assert all(
                c.isdigit() or c == "."
                for c in a.tokenizer.decode(batch.suffix_ids[row][has]).replace(" ", "")
            ), family
            seen += len(written) == 4
        assert seen >= 3, family
        head = torch.nn.Linear(a.model.config.text_config.hidden_size, 1)
        feats = a.image_features(batch.pixel_values)
        losses = [
            number_loss(head, *answer_hidden(a, batch, feats, share)[::2])
            for share in (True, False)
        ]
        assert losses[0] > 0
        torch.testing.assert_close(losses[0], losses[1], atol=1e-5, rtol=1e-5, msg=family)


def test_llm_position_loss_reads_the_visual_tokens_inside_the_llm(adapters):
    """The container recipe's position loss: the hidden states it reads are the visual tokens'
    (in the auxiliary targets' order) after exactly ``visual_layer`` decoder layers, so its
    gradient reaches those layers and no later one."""
    from vlmloc.toy.train import llm_position_loss

    for family in TOY_FAMILIES:
        a = adapters[family]
        pool = make_pool(a, SPEC, 4, seed=1, progress=False)
        batch = Batcher(a, pool, SPEC.categories, seed=0)(2, 3)
        with torch.no_grad():
            feats = a.image_features(batch.pixel_values)
            on_image = batch.prefix_ids == a.image_token_id
            ref = a.language_model(
                inputs_embeds=a.model.get_input_embeddings()(batch.prefix_ids).masked_scatter(
                    on_image[..., None], feats
                ),
                attention_mask=batch.prefix_att,
                position_ids=(batch.prefix_att.cumsum(-1) - 1).clamp(min=0),
                output_hidden_states=True,
            ).hidden_states
        assert answer_hidden(a, batch, feats)[3] is None  # off by default
        visual = answer_hidden(a, batch, feats, visual_layer=1)[3]
        assert visual.shape == (len(batch.targets["xy"]), feats.shape[-1])
        torch.testing.assert_close(visual, ref[1][on_image], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(visual, ref[2][on_image], atol=1e-3)  # the layer matters

        head = torch.nn.Linear(feats.shape[-1], 2)
        a.model.zero_grad(set_to_none=True)
        feats = a.image_features(batch.pixel_values)
        loss = llm_position_loss(
            head, answer_hidden(a, batch, feats, visual_layer=1)[3], batch.targets
        )
        loss.backward()
        layers = a.language_model.layers
        assert layers[0].mlp.down_proj.weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in layers[1].parameters()), family
        a.model.zero_grad(set_to_none=True)
