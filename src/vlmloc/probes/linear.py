"""Linear position probes trained from streamed features, two ways (docs/methods/probes.md,
"Three probes, two ways to train without storing features"):

- ``StreamingRidge``: a one-pass closed-form probe. Per site it keeps the sufficient statistics
  of a least-squares fit to one-hot targets (X^T X and X^T Y with a bias column, float64); after
  one pass over the images ``solve`` gives the ridge / least-squares weights, the same as a
  direct fit on the stacked features (tested). Every target (row, col, and the shuffled-label
  controls) shares X^T X, so extra targets cost only X^T Y.
- ``SGDProbes``: the paper's way, a linear classifier per site and axis trained with
  cross-entropy by SGD or Adam; ``partial_fit`` takes each batch as it streams, every site in
  the same pass; E epochs = E passes over the images.

Targets per token (``probe_targets``): "row" and "col" on the site's grid; with the control,
"row~shuffled" / "col~shuffled": the (row, col) pairs permuted among the tokens of each view of
each image, the permutation drawn from (seed, image index), so an image gets the same labels in
every epoch and its labels carry no position. (One permutation shared by all images would be a
relabelling a probe learns perfectly: not a control.) Every head is scored against the TRUE
position of its axis (``ProbeScores``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..defaults import with_defaults
from .features import Site, StageBatch, TokenLabels

SHUFFLED = "shuffled"


def head_variant(head: str) -> str:
    return head.split("~")[1] if "~" in head else "true"


def shuffled_positions(labels: TokenLabels, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) permuted among the tokens of each (image, view), with a permutation fixed by
    (seed, image index, view index)."""
    row, col = labels.row.clone(), labels.col.clone()
    keys = labels.image * 1000 + labels.view
    for key in torch.unique(keys).tolist():
        idx = torch.nonzero(keys == key).flatten()
        image, view = divmod(int(key), 1000)
        perm = torch.from_numpy(np.random.default_rng([seed, image, view]).permutation(len(idx)))
        row[idx], col[idx] = labels.row[idx[perm]], labels.col[idx[perm]]
    return row, col


def probe_targets(
    labels: TokenLabels, shuffled_control: bool = False, seed: int = 0
) -> dict[str, tuple[torch.Tensor, int]]:
    """Head name -> (class per token, number of classes)."""
    out = {"row": (labels.row, labels.rows), "col": (labels.col, labels.cols)}
    if shuffled_control:
        row, col = shuffled_positions(labels, seed)
        out[f"row~{SHUFFLED}"], out[f"col~{SHUFFLED}"] = (row, labels.rows), (col, labels.cols)
    return out


def random_control(
    batch: StageBatch, dim: int, seed: int = 0, name: str = "control.random"
) -> StageBatch:
    """A copy of ``batch`` with a site of standard-normal features of width ``dim`` at the LLM grid's tokens, drawn
    from (seed, image index): fixed per image, independent of position."""
    lab = batch.labels["llm"]
    device = next(iter(batch.features.values())).device if batch.features else "cpu"
    feats = torch.empty(len(lab), dim)
    for image in torch.unique(lab.image).tolist():
        idx = torch.nonzero(lab.image == image).flatten()
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(image))
        feats[idx] = torch.randn(len(idx), dim, generator=g)
    features = {**batch.features, name: feats.to(device)}
    return StageBatch(
        batch.image_ids, features, batch.labels, {**batch.sites, name: Site(name, "control", 0)}
    )


class StreamingRidge:
    """Closed-form linear probes from streamed sufficient statistics.

    ``compute_dtype`` is the dtype of each batch's X^T X product (float64 by default; float32 is
    faster on GPUs, the running sums stay float64). ``device``: where the statistics live (None =
    the features' device)."""

    def __init__(self, compute_dtype: torch.dtype = torch.float64, device=None):
        self.compute_dtype = compute_dtype
        self.device = device
        self.gram: dict[str, torch.Tensor] = {}
        self.cross: dict[str, dict[str, torch.Tensor]] = {}
        self.count: dict[str, int] = {}
        self.weights: dict[str, dict[str, torch.Tensor]] = {}

    def update(
        self, site: str, X: torch.Tensor, targets: dict[str, tuple[torch.Tensor, int]]
    ) -> None:
        dev = self.device if self.device is not None else X.device
        Xb = torch.cat(
            [
                X.to(dev, self.compute_dtype),
                torch.ones(len(X), 1, device=dev, dtype=self.compute_dtype),
            ],
            1,
        )
        if site not in self.gram:
            d = Xb.shape[1]
            self.gram[site] = torch.zeros(d, d, dtype=torch.float64, device=dev)
            self.cross[site] = {}
            self.count[site] = 0
        self.gram[site] += (Xb.T @ Xb).double()
        for head, (y, k) in targets.items():
            # X^T onehot(y): per class, the sum of its tokens' features (k columns, cheap next to X^T X)
            part = Xb.T @ torch.nn.functional.one_hot(y.to(dev), k).to(self.compute_dtype)
            if head not in self.cross[site]:
                self.cross[site][head] = torch.zeros(
                    Xb.shape[1], k, dtype=torch.float64, device=dev
                )
            self.cross[site][head] += part.double()
        self.count[site] += len(X)

    def merge(self, other: StreamingRidge) -> StreamingRidge:
        """Adds another's statistics (e.g. of another shard of the images)."""
        for site, g in other.gram.items():
            if site not in self.gram:
                self.gram[site] = g.clone()
                self.cross[site] = {h: c.clone() for h, c in other.cross[site].items()}
                self.count[site] = other.count[site]
                continue
            self.gram[site] += g.to(self.gram[site].device)
            for h, c in other.cross[site].items():
                self.cross[site][h] += c.to(self.gram[site].device)
            self.count[site] += other.count[site]
        return self

    def state_dict(self) -> dict:
        return {"gram": self.gram, "cross": self.cross, "count": self.count}

    @classmethod
    def from_state_dict(cls, state: dict, **kw) -> StreamingRidge:
        out = cls(**kw)
        out.gram, out.cross, out.count = state["gram"], state["cross"], state["count"]
        return out

    def solve(self, l2: float = 1e-3) -> dict[str, dict[str, torch.Tensor]]:
        """Per site and head, weights (width + 1, classes) with the bias in the last row, of
        min ||[X 1] W - onehot(y)||^2 + lam ||W without bias||^2, lam = l2 x the mean diagonal of
        X^T X (so l2 does not depend on the features' scale). l2 = 0: least squares
        (pseudo-inverse where X^T X is singular)."""
        self.weights = {}
        for site, g in self.gram.items():
            d = g.shape[0] - 1
            lam = l2 * float(torch.diagonal(g)[:d].mean()) if l2 else 0.0
            A = g.clone()
            A.diagonal()[:d] += lam
            B = torch.cat(list(self.cross[site].values()), 1)
            if lam > 0:
                W = torch.linalg.solve(A, B)
            else:
                W = torch.linalg.pinv(A, hermitian=True) @ B
            sizes = [c.shape[1] for c in self.cross[site].values()]
            self.weights[site] = dict(zip(self.cross[site], torch.split(W, sizes, 1), strict=True))
        return self.weights

    def solve_lda(self, l2: float = 1e-3) -> dict[str, dict[str, torch.Tensor]]:
        """Linear discriminant analysis from the same statistics: X^T onehot(y) holds each class's
        feature sum (and, in the bias row, its count), so the class means and the pooled
        within-class covariance S follow without another pass. Scores x^T S^-1 mu_k
        - mu_k^T S^-1 mu_k / 2 + log prior_k: linear in x, in the same (width + 1, classes)
        layout as ``solve``. S is regularised by l2 x its mean diagonal. Unlike least squares
        on one-hot targets, LDA does not "mask" middle classes of an ordered axis (a row in the
        middle of the grid), which cost the least-squares probe up to 20 points on the demo."""
        self.weights = {}
        for site, g in self.gram.items():
            d, n = g.shape[0] - 1, self.count[site]
            self.weights[site] = {}
            for head, c in self.cross[site].items():
                sums, counts = c[:d], c[d]
                k = counts.numel()
                means = sums / counts.clamp(min=1)
                within = g[:d, :d] - (sums / counts.clamp(min=1)) @ sums.T
                cov = within / max(n - k, 1)
                cov.diagonal().add_(l2 * float(cov.diagonal().mean()))
                W = torch.linalg.solve(cov, means)
                bias = -0.5 * (means * W).sum(0) + torch.log(
                    counts / n
                )  # -inf for a class never seen
                self.weights[site][head] = torch.cat([W, bias[None]], 0)
        return self.weights

    def predict(
        self, site: str, X: torch.Tensor, weights: dict | None = None
    ) -> dict[str, torch.Tensor]:
        """Predicted class per head, with ``weights`` (as ``solve`` / ``solve_lda`` return them;
        default: the last solved)."""
        out = {}
        for head, W in (weights or self.weights)[site].items():
            scores = X.to(W.device, W.dtype) @ W[:-1] + W[-1]
            out[head] = scores.argmax(1)
        return out


class SGDProbes:
    """Per site and head a ``torch.nn.Linear`` trained with cross-entropy as batches stream.

    Features are standardised per dimension with the mean and std of the first batch a site
    sees, then frozen (a fixed affine map: the probe stays linear in the raw features; LLM
    hidden states have a few dimensions hundreds of times larger than the rest). Each streamed
    batch is cut into ``minibatch`` tokens per step, in a random order."""

    def __init__(
        self,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        minibatch: int = 4096,
        seed: int = 0,
        device=None,
    ):
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {optimizer!r}")
        self.lr, self.optimizer, self.weight_decay = lr, optimizer, weight_decay
        self.minibatch, self.device = minibatch, device
        self.generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.heads: dict[str, torch.nn.ModuleDict] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.norm: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.steps = 0

    def _prepare(self, site: str, X: torch.Tensor) -> torch.Tensor:
        dev = self.device if self.device is not None else X.device
        X = X.to(
            dev, torch.float32, copy=True
        )  # a copy: features from inference mode may enter autograd
        if site not in self.norm:
            self.norm[site] = (
                X.mean(0),
                X.std(0).clamp(min=1e-6) if len(X) > 1 else torch.ones_like(X[0]),
            )
        mean, std = self.norm[site]
        return (X - mean) / std

    def _heads(self, site: str, width: int, targets: dict[str, tuple[torch.Tensor, int]], device):
        if site not in self.heads:
            torch.manual_seed(self.seed)
            heads = torch.nn.ModuleDict(
                {h.replace("~", "__"): torch.nn.Linear(width, k) for h, (_, k) in targets.items()}
            )
            heads.to(device)
            self.heads[site] = heads
            opt = torch.optim.Adam if self.optimizer == "adam" else torch.optim.SGD
            self.optimizers[site] = opt(
                heads.parameters(), lr=self.lr, weight_decay=self.weight_decay
            )
        return self.heads[site]

    def partial_fit(
        self, site: str, X: torch.Tensor, targets: dict[str, tuple[torch.Tensor, int]]
    ) -> float:
        """Steps over one streamed batch; returns its mean loss (summed over heads)."""
        with torch.inference_mode(False), torch.enable_grad():
            X = self._prepare(site, X)
            heads = self._heads(site, X.shape[1], targets, X.device)
            opt = self.optimizers[site]
            order = torch.randperm(len(X), generator=self.generator).to(X.device)
            ys = {h.replace("~", "__"): y.to(X.device) for h, (y, _) in targets.items()}
            total, n = 0.0, 0
            for s in range(0, len(X), self.minibatch):
                idx = order[s : s + self.minibatch]
                loss = sum(
                    torch.nn.functional.cross_entropy(heads[h](X[idx]), y[idx])
                    for h, y in ys.items()
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                n += len(idx)
                self.steps += 1
        return total / max(n, 1)

    @torch.no_grad()
    def predict(self, site: str, X: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode(False):
            mean, std = self.norm[site]
            Xn = (X.to(mean.device, torch.float32) - mean) / std
            return {
                h.replace("__", "~"): head(Xn).argmax(1) for h, head in self.heads[site].items()
            }


@dataclass
class _Cells:
    rows: int
    cols: int
    counts: torch.Tensor  # (kind 0 global / 1 local, row, col, [n, row ok, col ok, both ok])
    # per image, [n, row ok, col ok, both ok]: row i is image ``first + i`` (a split's images are a range)
    images: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.long))
    first: int = 0

    def add_images(self, image: torch.Tensor, values: torch.Tensor) -> None:
        if not len(self.images):
            self.first = int(image.min())
        idx = image - self.first
        if int(idx.min()) < 0:
            raise ValueError(
                "a split's images are scored in order: image ids below the first one seen"
            )
        need = int(idx.max()) + 1
        if need > len(self.images):  # grow geometrically
            grown = torch.zeros(max(need, 2 * len(self.images)), 4, dtype=torch.long)
            grown[: len(self.images)] = self.images
            self.images = grown
        self.images.index_add_(0, idx, values)


class ProbeScores:
    """Accuracy counts per site, variant ("true" labels or "shuffled" control) and grid cell,
    scored against each token's true position; and per image, for intervals over images."""

    def __init__(self):
        self.cells: dict[tuple[str, str], _Cells] = {}
        self.sites: dict[str, Site] = {}

    def update(self, site: Site, labels: TokenLabels, predictions: dict[str, torch.Tensor]) -> None:
        self.sites[site.name] = site
        variants = {head_variant(h) for h in predictions}
        for v in sorted(variants):
            suffix = "" if v == "true" else f"~{v}"
            pr, pc = predictions[f"row{suffix}"].cpu(), predictions[f"col{suffix}"].cpu()
            key = (site.name, v)
            if key not in self.cells:
                self.cells[key] = _Cells(
                    labels.rows,
                    labels.cols,
                    torch.zeros(2, labels.rows, labels.cols, 4, dtype=torch.long),
                )
            cells = self.cells[key].counts
            row_ok, col_ok = (pr == labels.row).long(), (pc == labels.col).long()
            flat = (labels.kind * labels.rows + labels.row) * labels.cols + labels.col
            view = cells.view(-1, 4)
            values = torch.stack((torch.ones_like(row_ok), row_ok, col_ok, row_ok * col_ok), 1)
            for j in range(4):
                view[:, j].index_add_(0, flat, values[:, j])
            self.cells[key].add_images(labels.image, values)

    def cell_rows(self) -> list[dict]:
        """Tidy per-position rows (for Fig. 2 right and Fig. 11)."""
        out = []
        for (name, variant), c in self.cells.items():
            s = self.sites[name]
            for k, kind in enumerate(("global", "local")):
                for r in range(c.rows):
                    for col in range(c.cols):
                        n, ro, co, bo = c.counts[k, r, col].tolist()
                        if n:
                            out.append(
                                {
                                    "site": name,
                                    "stage": s.stage,
                                    "layer": s.layer,
                                    "variant": variant,
                                    "kind": kind,
                                    "row": r,
                                    "col": col,
                                    "n": n,
                                    "acc_row": ro / n,
                                    "acc_col": co / n,
                                    "acc_both": bo / n,
                                }
                            )
        return out

    def summary_rows(self, bootstrap: dict | None = None) -> list[dict]:
        """Per site and variant: row, col, mean of the two (the paper's per-layer accuracy) and
        both-right accuracy, with chance levels (uniform positions), and 95% percentile-bootstrap
        intervals of ``acc_mean`` and ``acc_both`` over images (``bootstrap``: resamples, level,
        seed; every key resamples the same images the same way)."""
        b = with_defaults("bootstrap", bootstrap)
        # every key resamples the same images: those any key saw (its own rows elsewhere are zeros)
        first = min((c.first for c in self.cells.values() if len(c.images)), default=0)
        last = max(
            (c.first + len(c.images) for c in self.cells.values() if len(c.images)), default=0
        )
        per_key = {}
        for key, c in self.cells.items():
            full = torch.zeros(last - first, 4, dtype=torch.long)
            full[c.first - first : c.first - first + len(c.images)] = c.images
            per_key[key] = full.numpy().astype(float)
        seen = np.zeros(last - first, dtype=bool)
        for a in per_key.values():
            seen |= a[:, 0] > 0
        weights = None
        if seen.any():
            rng = np.random.default_rng(b["seed"])
            n = int(seen.sum())
            weights = rng.multinomial(n, np.full(n, 1 / n), size=b["resamples"]).astype(float)
        alpha = (1 - b["level"]) / 2
        out = []
        for (name, variant), c in self.cells.items():
            s = self.sites[name]
            n, ro, co, bo = c.counts.sum((0, 1, 2)).tolist()
            acc_row, acc_col = ro / n, co / n
            rec = {
                "site": name,
                "stage": s.stage,
                "layer": s.layer,
                "variant": variant,
                "n_tokens": n,
                "n_images": int((c.images[:, 0] > 0).sum()),
                "grid_rows": c.rows,
                "grid_cols": c.cols,
                "acc_row": acc_row,
                "acc_col": acc_col,
                "acc_mean": (acc_row + acc_col) / 2,
                "acc_both": bo / n,
                "chance_row": 1 / c.rows,
                "chance_col": 1 / c.cols,
            }
            per = per_key[name, variant][seen] if weights is not None else None
            for acc, ok in (("acc_mean", None), ("acc_both", 3)):
                if per is None:
                    rec[f"{acc}_lo"] = rec[f"{acc}_hi"] = np.nan
                    continue
                hits = (per[:, 1] + per[:, 2]) / 2 if ok is None else per[:, ok]
                with np.errstate(invalid="ignore", divide="ignore"):
                    boot = (weights @ hits) / (weights @ per[:, 0])
                rec[f"{acc}_lo"], rec[f"{acc}_hi"] = (
                    float(q) for q in np.nanquantile(boot, [alpha, 1 - alpha])
                )
            out.append(rec)
        return out
