"""What every model adapter provides, and the token geometry that is shared by all families.

An adapter is the only place that knows a model's quirks: chat template and system prompt, image
preprocessing, where each visual token sits in the sequence and which pixels of the ORIGINAL image
it covers, where decoder layers / attention modules / heads are, and how box answers are written.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..tasks import ParsedBox, box_number_spans


class LazyModule:
    """A module imported on its first use. The workflow asks the adapter classes what it decides
    per family (``makes_local_views``, ``flops_geometry``) while it plans the jobs, and planning
    stays torch-free: the adapter modules import torch this way."""

    def __init__(self, name: str):
        self._name, self._module = name, None

    def __getattr__(self, attr: str):
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


torch = LazyModule("torch")


@dataclass(frozen=True)
class View:
    """One grid of visual tokens and the region of the original image it was made from.

    ``region`` = (x0, y0, x1, y1) in original-image pixels; it may reach outside the image (LLaVA's
    pad-to-square). Token (r, c) covers region x0 + c*(x1-x0)/cols .. x0 + (c+1)*(x1-x0)/cols, and
    likewise for rows. ``offset`` is the index of the view's first token among the image tokens.
    """

    name: str  # "image" (single view), "tile_<k>", "global"
    kind: str  # "global" or "local"
    rows: int
    cols: int
    region: tuple[float, float, float, float]
    offset: int

    @property
    def n_tokens(self) -> int:
        return self.rows * self.cols

    def cell_edges(self) -> tuple[np.ndarray, np.ndarray]:
        x0, y0, x1, y1 = self.region
        return np.linspace(x0, x1, self.cols + 1), np.linspace(y0, y1, self.rows + 1)


@dataclass(frozen=True)
class ImageLayout:
    width: int
    height: int
    views: tuple[View, ...]

    @property
    def n_tokens(self) -> int:
        return sum(v.n_tokens for v in self.views)

    def view(self, name: str) -> View:
        return next(v for v in self.views if v.name == name)

    def token_table(self) -> list[dict]:
        """One row per visual token: index, view, kind, row, col and its pixel box."""
        rows = []
        for v in self.views:
            xs, ys = v.cell_edges()
            for r in range(v.rows):
                for c in range(v.cols):
                    rows.append(
                        {
                            "token": v.offset + r * v.cols + c,
                            "view": v.name,
                            "kind": v.kind,
                            "row": r,
                            "col": c,
                            "x0": xs[c],
                            "y0": ys[r],
                            "x1": xs[c + 1],
                            "y1": ys[r + 1],
                        }
                    )
        return rows


def load_tokenizer(path: str | Path):
    """A checkpoint's tokenizer exactly as its tokenizer.json defines it (normalizer,
    pre-tokenizer, BPE, decoder), with its tokenizer_config's special tokens; left padding.

    Not ``AutoTokenizer``: transformers 5 rebuilds a Llama tokenizer's pipeline from its class and
    the config's ``legacy`` flag. llava-hf/llava-1.5-7b-hf says ``legacy: false`` while its
    tokenizer.json prepends "▁" to every piece of text, as LLaVA was trained (the original
    ``tokenizer_image_token``): the rebuilt one drops the "▁" (29871) after ``<image>`` that
    vLLM documents for that checkpoint, and writes " grabbed" without its "▁" token
    (tests/test_hub_tokenizers.py). For byte-level BPE (Qwen, the toys) both give the same ids."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    tokenizer.padding_side = "left"
    return tokenizer


def pad_rows(
    rows: Sequence[Sequence[int]], pad: int, left: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows of different lengths -> (ids, attention mask), padded on the left (rows end
    together, as generation needs) or on the right."""
    width = max(map(len, rows), default=0)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        ids[r, cols], mask[r, cols] = torch.tensor(row, dtype=torch.long), 1
    return ids, mask


@dataclass
class Encoded:
    """A batch ready for the model, with where each row's visual tokens sit in the sequence."""

    inputs: dict[str, torch.Tensor]
    image_positions: list[
        torch.Tensor
    ]  # per row: sequence positions of its visual tokens, in order
    layouts: list[ImageLayout]
    prompt_lengths: list[int] = field(default_factory=list)
    query_ids: list[int] = field(
        default_factory=list
    )  # each row's index in the runner's caller list


@dataclass(frozen=True)
class GoldAnswer:
    """A gold reply as the family writes it after the prompt (answer prefix included, EOS not:
    it is a token, added by ``answer_tokens``), and the character spans of its CONTENT: the box's
    four numbers, the class name, the word "Yes". Everything else is template."""

    text: str
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class AnswerTokens:
    """A gold reply's token ids as the model writes them after the prompt (EOS last), and per
    token whether it is content (overlaps a content span) or template (brackets, commas, fixed
    words, markup such as ``<box>``, the answer prefix, EOS). ``spans``: per token, the
    characters of the reply's text it covers (EOS: none, at the end)."""

    ids: tuple[int, ...]
    content: tuple[bool, ...]
    spans: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Site:
    """One intervention site (pyvene style): a name that is the same in every family, the module
    that carries it, and whether its value is the module's output (forward hook) or its first
    input (forward pre-hook)."""

    name: str
    module: torch.nn.Module
    value: str  # "output" | "input"
    field: str | None = None  # an output that is a ModelOutput: the entry that holds the value

    def read(self, output):
        """The site's value in what its module returned (a tensor, a tuple's first entry, or
        ``field`` of a ModelOutput)."""
        if self.field is not None:
            return getattr(output, self.field)
        return output[0] if isinstance(output, tuple | list) else output

    def write(self, output, value):
        """What the module returns with the site's value replaced by ``value``."""
        if self.field is not None:
            output[self.field] = value
            return output
        return (value, *output[1:]) if isinstance(output, tuple) else value


# what the "0." of a box number in 0..1 counts as in the gold answer's mask (Adapter.box_leading_zero)
BOX_LEADING_ZERO = ("template", "content")

# The site table every adapter provides (``Adapter.site``); {i} is a block index.
SITES = {
    "vision.{i}": "output of the vision backbone's block i: (views, prefix + patches, width)",
    "projector": "output of the multimodal projector: the visual tokens at the LLM input",
    "llm.{i}": "output of decoder layer i: the residual stream (batch, tokens, hidden)",
    "attn.{i}": "decoder layer i's attention module (knockout edits the mask it receives)",
    "head_z.{i}": "input of layer i's o_proj: per-query-head outputs (batch, tokens, heads * head_dim), "
    "heads contiguous; GQA-safe",
}


@dataclass(frozen=True)
class _ConfigOnly:
    """A model's config without the model (``Adapter.geometry_only``)."""

    config: object


class Adapter(ABC):
    """Base class; see llava.py and internvl.py for the two families of the paper, and
    qwen2_5_vl.py for a third one (M-RoPE, dynamic resolution, absolute-pixel boxes)."""

    family: str = ""
    system_prompt: str = ""
    # whether the vision tower sees every view on its own, so that one view's output can be cached
    # and reused in any batch (``vision_cache``): CLIP's and InternViT's views are independent
    independent_views: bool = True
    # whether a view's grid follows the image's size (Qwen2.5-VL's native resolution) rather than
    # being one shape for every view (LLaVA's 24 x 24, InternVL's 16 x 16)
    dynamic_resolution: bool = False
    # the family's hub normalisation, used where a checkpoint's preprocessor_config has none
    hub_image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    hub_image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @classmethod
    def makes_local_views(cls, options: dict) -> bool:
        """Whether a model of this family with these config options (``max_tiles``, ...) gives any
        image local views (tiles). A class method: the workflow asks it with no model loaded."""
        return False

    @classmethod
    def flops_geometry(cls, folder: str | Path, options: dict):
        """``workload.Geometry`` of a local checkpoint (its config.json, no weights) with these
        config options, for the FLOP count of its jobs; no model is loaded."""
        from ..workload import Geometry

        return Geometry.of_checkpoint(folder, 1)

    def __init__(
        self, model, tokenizer, preprocessor: dict, system_prompt: str | None = None, **options
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        if system_prompt is not None:
            self.system_prompt = system_prompt
        self.options = options
        self.image_mean = np.array(
            preprocessor.get("image_mean", self.hub_image_mean), dtype=np.float32
        )
        self.image_std = np.array(
            preprocessor.get("image_std", self.hub_image_std), dtype=np.float32
        )

    # ---- loading -----------------------------------------------------------------------------
    model_class_name: str = ""  # the transformers class, imported only when a model is loaded

    @classmethod
    def model_class(cls) -> type:
        import transformers

        return getattr(transformers, cls.model_class_name)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: str = "float32",
        device: str = "cpu",
        attn_implementation: str = "sdpa",
        **options,
    ) -> Adapter:
        path = Path(path)
        model = cls.model_class().from_pretrained(
            path, dtype=getattr(torch, dtype), attn_implementation=attn_implementation
        )
        model.to(device).eval()
        tokenizer = load_tokenizer(path)
        preprocessor = json.loads((path / "preprocessor_config.json").read_text())
        return cls(model, tokenizer, preprocessor, **cls.checkpoint_options(path, options))

    @staticmethod
    def checkpoint_options(path: str | Path, options: dict) -> dict:
        """The adapter options: those a trained checkpoint was trained with (its
        ``vlmloc_adapter.json``), overridden by the given ones that are not None."""
        saved = Path(path) / "vlmloc_adapter.json"
        if not saved.exists():
            return dict(options)
        return {
            **json.loads(saved.read_text()),
            **{k: v for k, v in options.items() if v is not None},
        }

    @classmethod
    def geometry_only(cls, path: str | Path, **options) -> Adapter:
        """An adapter without weights or tokenizer, from a checkpoint's config.json and
        preprocessor_config.json: enough for ``layout`` (which pixels each visual token covers),
        for figures drawn on a CPU node with no model loaded."""
        from transformers import AutoConfig

        path = Path(path)
        model = _ConfigOnly(AutoConfig.from_pretrained(path))
        preprocessor = json.loads((path / "preprocessor_config.json").read_text())
        return cls(model, None, preprocessor, **cls.checkpoint_options(path, options))

    @classmethod
    def parser(cls) -> Adapter:
        """An adapter without a model: enough to parse and score answers on a CPU-only node."""
        return cls(None, None, {})

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- images ------------------------------------------------------------------------------
    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """(3, H, W) float tensor normalised with the checkpoint's mean and std."""
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        arr = (arr - self.image_mean) / self.image_std
        return torch.from_numpy(arr.transpose(2, 0, 1).copy())

    @abstractmethod
    def layout(self, width: int, height: int) -> ImageLayout: ...

    @abstractmethod
    def views(self, image: Image.Image) -> list[Image.Image]:
        """The resized views of one image (S x S each), in the order of ``layout(...).views``."""

    def pixel_values(self, image: Image.Image) -> torch.Tensor:
        """All views of one image, normalised: (n_views, 3, S, S)."""
        return torch.stack([self.to_tensor(v) for v in self.views(image)])

    def pixel_inputs(
        self, pixels: Sequence[torch.Tensor], layouts: Sequence[ImageLayout]
    ) -> dict[str, torch.Tensor]:
        """The model's image inputs for a batch of images (``pixel_values`` of each, in order):
        here their views concatenated, since every view has one size."""
        return {"pixel_values": torch.cat(list(pixels)).to(self.model.dtype)}

    def token_inputs(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inputs the model needs per token besides the ids and the mask (none here)."""
        return {}

    def position_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        layouts: Sequence[ImageLayout],
        past_length: int = 0,
    ) -> torch.Tensor:
        """Position ids of the tokens ``past_length:`` of (batch, tokens) ``input_ids``, the whole
        sequence given (a prefix already cached and what continues it, padding anywhere): 1-D
        positions that count real tokens only, as the stock ``generate`` does with left padding.
        A family with other positions (Qwen2.5-VL's M-RoPE) overrides it; the runner, integrated
        gradients and mediation take their positions from here."""
        return (attention_mask.cumsum(-1) - 1).clamp(min=0)[..., past_length:]

    # ---- text --------------------------------------------------------------------------------
    @abstractmethod
    def prompt(self, task_text: str, n_image_tokens: int) -> str:
        """The full chat-formatted prompt with ``n_image_tokens`` image placeholders."""

    @property
    @abstractmethod
    def image_token_id(self) -> int: ...

    def image_prefix_length(self, ids: Sequence[int]) -> int:
        """Tokens of a tokenized prompt up to its last image token: the part that every question
        about one image shares (system prompt and visual tokens)."""
        return len(ids) - list(ids)[::-1].index(self.image_token_id)

    # what separates the prompt from the answer when a reply is written out (for training)
    answer_prefix: str = ""
    # the number the family writes for the answer frame's far edge: its box coordinates are 0..box_scale
    box_scale: float = 1.0

    @abstractmethod
    def parse_box(self, answer: str, width: int, height: int) -> ParsedBox:
        """Box in ORIGINAL-image pixels (x1, y1, x2, y2), whatever the family writes."""

    @abstractmethod
    def format_box(self, box: tuple[float, float, float, float], width: int, height: int) -> str:
        """The family's own answer text for a box in original pixels (for training and scoring)."""

    # the word a family writes for "yes" to the binary query (the gold answer of mediation)
    yes_word: str = "Yes"

    @property
    def box_leading_zero(self) -> str:
        """Whether the "0." of a box number in 0..1 ("0.12", LLaVA's format) is template (the
        default: near-deterministic, as the paper masks template tokens) or content (option
        ``box_leading_zero``). The decimals are content either way; "1.00" is content whole."""
        value = self.options.get("box_leading_zero") or "template"
        if value not in BOX_LEADING_ZERO:
            raise ValueError(f"box_leading_zero must be one of {BOX_LEADING_ZERO}, not {value!r}")
        return value

    def _number_content(self, text: str, start: int, end: int) -> tuple[int, int]:
        """A box number's content span: without its leading "0." when that is template."""
        if self.box_leading_zero == "template" and text.startswith("0.", start) and end > start + 2:
            return start + 2, end
        return start, end

    def gold_answer(self, task: str, row: dict, present: Sequence[str] = ()) -> GoldAnswer:
        """The gold reply of one sample and its content spans.

        localization: the gold box in the family's format; content = its four numbers (without
        a leading "0." unless ``box_leading_zero`` is "content").
        list: the image's categories (``present``, in the dataset's order; the sample's own if not
        given); content = the sample's class name in it.
        binary: "Yes" (the object is there); content = the word.
        """
        prefix = self.answer_prefix
        if task == "localization":
            box = (
                row["bbox_x"],
                row["bbox_y"],
                row["bbox_x"] + row["bbox_w"],
                row["bbox_y"] + row["bbox_h"],
            )
            text = prefix + self.format_box(box, int(row["width"]), int(row["height"]))
            spans = tuple(self._number_content(text, s, e) for s, e, _ in box_number_spans(text))
            if len(spans) != 4:
                raise ValueError(f"no box numbers found in the gold answer {text!r}")
            return GoldAnswer(text, spans)
        if task == "list":
            names = list(present) or [row["category"]]
            if row["category"] not in names:
                raise ValueError(f"{row['category']!r} is not among the image's categories {names}")
            text, spans = prefix, ()
            for k, name in enumerate(names):
                text += ", " if k else ""
                if name == row["category"]:
                    spans = ((len(text), len(text) + len(name)),)
                text += name
            return GoldAnswer(text, spans)
        if task == "binary":
            return GoldAnswer(
                prefix + self.yes_word, ((len(prefix), len(prefix) + len(self.yes_word)),)
            )
        raise ValueError(f"no gold answer for task {task!r}")

    def reply_tokens(
        self, prompt: str, reply: str
    ) -> tuple[list[int], list[int], list[tuple[int, int]]]:
        """``prompt`` (the full prompt, as ``prompt`` writes it) and ``reply`` tokenized ONCE, as
        one text, the way generation sees them: (the prompt's ids, the reply's ids, per reply
        token its characters in ``reply``). The reply starts at the first token that covers one
        of its characters (offsets); the tokens before it must be the prompt's own ids, so that
        the teacher-forced sequence is the prompt generation starts from, followed by the reply.
        A tokenizer that tokenizes a reply differently on its own (Llama's hub tokenizer.json
        writes " Yes" alone as ['▁', '▁Yes'], after "ASSISTANT:" as ['▁Yes']) cannot change it."""
        tok = self.tokenizer
        alone = list(tok(prompt, add_special_tokens=True)["input_ids"])
        enc = tok(prompt + reply, add_special_tokens=True, return_offsets_mapping=True)
        ids, offsets, n = list(enc["input_ids"]), enc["offset_mapping"], len(prompt)
        start = next((k for k, (_, b) in enumerate(offsets) if b > n), len(ids))
        if ids[:start] != alone:
            raise ValueError(
                f"the {self.family} tokenizer merges the prompt's end with the reply {reply!r}: "
                "the prompt's own tokens are not a prefix of prompt + reply"
            )
        spans = [(max(a - n, 0), b - n) for a, b in offsets[start:]]
        return alone, ids[start:], spans

    def answer_tokens(self, gold: GoldAnswer, prompt: str) -> AnswerTokens:
        """The gold reply's tokens as generation writes them after ``prompt`` (``reply_tokens``),
        then EOS; content = tokens overlapping a content span. The one builder of every scored
        sequence: mediation, head ablation's gold nll, the IG target and the toys' training."""
        _, ids, spans = self.reply_tokens(prompt, gold.text)
        content = [b > a and any(a < e and b > s for s, e in gold.spans) for a, b in spans]
        if not any(content):
            raise ValueError(f"no token of {gold.text!r} covers its content")
        end = len(gold.text)
        return AnswerTokens(
            tuple(ids) + (self.tokenizer.eos_token_id,),
            tuple(content) + (False,),
            tuple(spans) + ((end, end),),
        )

    def gold_tokens(
        self, task: str, row: dict, task_text: str, present: Sequence[str] = ()
    ) -> AnswerTokens:
        """``answer_tokens`` of a sample's gold reply (``gold_answer``) after the prompt of
        ``task_text`` about its image (the image placeholders of its layout)."""
        layout = self.layout(int(row["width"]), int(row["height"]))
        return self.answer_tokens(
            self.gold_answer(task, row, present), self.prompt(task_text, layout.n_tokens)
        )

    # ---- batching ----------------------------------------------------------------------------
    def encode(
        self,
        images: list,
        task_texts: list[str],
        answers: list[str] | None = None,
        pixels: list[torch.Tensor] | None = None,
    ) -> Encoded:
        """Tokenize a batch (left padding) with its pixel values; ``answers`` follow their
        prompts for teacher-forced scoring, tokenized with them (``reply_tokens``). ``pixels`` (from ``pixel_values``) spares
        preprocessing an image again; ``images`` may then be just their (width, height)."""
        sizes = [im if isinstance(im, tuple) else im.size for im in images]
        layouts = [self.layout(*wh) for wh in sizes]
        texts = [self.prompt(t, lay.n_tokens) for t, lay in zip(task_texts, layouts, strict=True)]
        prompt_lengths = []
        if answers is not None:  # teacher forcing: each reply after its prompt (reply_tokens)
            rows = []
            for text, answer in zip(texts, answers, strict=True):
                prompt_ids, reply_ids, _ = self.reply_tokens(text, answer)
                rows.append(prompt_ids + reply_ids)
                prompt_lengths.append(len(prompt_ids))
            ids, attention = pad_rows(rows, self.tokenizer.pad_token_id)
        else:
            batch = self.tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=True
            )
            ids, attention = batch["input_ids"], batch["attention_mask"]
        if pixels is None:
            pixels = [self.pixel_values(im) for im in images]
        positions = [torch.nonzero(row == self.image_token_id).flatten() for row in ids]
        for p, lay in zip(positions, layouts, strict=True):
            if len(p) != lay.n_tokens:
                raise RuntimeError(
                    f"{len(p)} image tokens in the prompt, layout expects {lay.n_tokens}"
                )
        inputs = {
            "input_ids": ids,
            "attention_mask": attention,
            **self.pixel_inputs(pixels, layouts),
            **self.token_inputs(ids),
        }
        return Encoded(
            inputs=inputs, image_positions=positions, layouts=layouts, prompt_lengths=prompt_lengths
        )

    def image_features(self, pixel_values: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """Visual token embeddings at the LLM input (after the projector), flattened to
        (total tokens, hidden) in sequence order: image after image, view after view.
        ``pixel_values``: one image's (``pixel_values``), or a list of several images'."""
        if isinstance(pixel_values, list | tuple):
            pixel_values = torch.cat(list(pixel_values))
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=pixel_values,
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        )
        feats = getattr(out, "pooler_output", out)
        if isinstance(feats, list | tuple):
            feats = torch.cat([f.reshape(-1, f.shape[-1]) for f in feats])
        return feats.reshape(-1, feats.shape[-1])

    # ---- structure (for interventions) -----------------------------------------------------------
    @property
    def language_model(self):
        return self.model.model.language_model

    @property
    def decoder_layers(self):
        return self.language_model.layers

    @property
    def projector(self):
        return self.model.model.multi_modal_projector

    @property
    def vision_tower(self):
        return self.model.model.vision_tower

    @property
    def has_local_views(self) -> bool:
        """Whether any image gets local views (tiles): tried on a wide image, which gets the most."""
        return any(v.kind == "local" for v in self.layout(2000, 500).views)

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    @abstractmethod
    def vision_layers(self):
        """The vision backbone's transformer blocks, in order (each returns the hidden states
        of every token of every view: (views, prefix + patches, width))."""

    # tokens before the patches in each view's vision sequence (CLIP's and InternViT's CLS)
    vision_prefix_tokens: int = 1

    def vision_tokens(self, value: torch.Tensor, layouts: Sequence[ImageLayout]) -> torch.Tensor:
        """A vision block's output (``vision.{i}``) for a batch of images of ``layouts`` as
        (patches, width): each view's patches row-major on the backbone grid (the layout's grid
        refined ``vision_merge`` times), view after view, image after image. Here the output is
        (views, prefix + patches, width): the prefix (CLS) is dropped."""
        return value[:, self.vision_prefix_tokens :].reshape(-1, value.shape[-1])

    def vision_tower_inputs(self, inputs: dict) -> dict:
        """The stock vision tower's keyword arguments, from the model's inputs (``pixel_inputs``):
        here the views' pixel values."""
        return {"pixel_values": inputs["pixel_values"]}

    @property
    @abstractmethod
    def vision_patch_grid(self) -> int:
        """Patches per side of one view inside the vision backbone (before any merge); the LLM's
        grid per view is this divided by ``vision_merge``."""

    @property
    def vision_merge(self) -> int:
        """Backbone patches per LLM token along each axis (1: none; 2: InternVL's pixel shuffle)."""
        return self.vision_patch_grid // self.grid

    @property
    def num_heads(self) -> int:
        return self.model.config.text_config.num_attention_heads

    @property
    def head_dim(self) -> int:
        cfg = self.model.config.text_config
        return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads

    @property
    def num_kv_heads(self) -> int:
        cfg = self.model.config.text_config
        return getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads

    def attention(self, layer: int):
        return self.decoder_layers[layer].self_attn

    def site(self, name: str) -> Site:
        """The module and value of a named site (``SITES``); the names are the same in every family."""
        stage, _, index = name.partition(".")
        try:
            if stage == "projector" and not index:
                return self.projector_site()
            i = int(index)
            if i < 0:
                raise IndexError(i)
            if stage == "vision":
                return Site(name, self.vision_layers[i], "output")
            if stage == "llm":
                return Site(name, self.decoder_layers[i], "output")
            if stage == "attn":
                return Site(name, self.attention(i), "input")
            if stage == "head_z":
                return Site(name, self.attention(i).o_proj, "input")
        except (ValueError, IndexError):
            pass
        raise ValueError(f"unknown site {name!r}; the sites are {list(SITES)} with i a block index")

    def projector_site(self) -> Site:
        """Where the visual tokens enter the LLM, in sequence order: the projector's output."""
        return Site("projector", self.projector, "output")

    def site_names(self) -> list[str]:
        """Every site of this model, in processing order."""
        out = [f"vision.{i}" for i in range(len(self.vision_layers))] + ["projector"]
        for i in range(self.num_layers):
            out += [f"attn.{i}", f"head_z.{i}", f"llm.{i}"]
        return out
