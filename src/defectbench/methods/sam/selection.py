"""Turning an image's mask proposals into one saliency map: oracle and ground-truth-free strategies.

Candidates
    Every proposal ``m_i`` taken as is and, where a strategy allows it, negated (``~m_i``): SAM often
    segments the sound surface around a defect rather than the defect itself.

``oracle-combine`` (the paper's protocol, section 3.2; uses the ground truth ``G``)
    Choose a set ``S`` of candidates maximising the Jaccard index of their union with the ground truth,
    ``J(S) = |U ∩ G| / |U ∪ G|`` with ``U = ∪_{c in S} c``. Since ``F1 = 2J / (1 + J)`` is increasing in
    ``J``, this is also the selection of maximal F1 (Dice). An image without defects (``G`` empty) gets the
    empty selection (an all-background map; ``J = 1`` by convention). Candidates containing no ground-truth
    pixel are dropped first (adding one never raises ``J``). Maximising ``J`` over unions is a weighted
    coverage problem (NP-hard in general); the search (:func:`greedy_union`) is greedy from several starts
    (add by largest gain, add by precision, drop from all, and add by gain after each of the 16 individually
    best candidates), each refined by a 1-opt local search (add, drop or swap one candidate while ``J``
    rises). The tests check it against exhaustive search on small cases from real masks and random ones.
``oracle-best``
    The single proposal (as is) of maximal ``J`` — the simpler oracle the paper compares against.
``prior`` (ground-truth free)
    Scores every candidate by a contrast prior (mean intensity inside versus a ring just outside, in units
    of the image's standard deviation) times a size prior (defects cover a small part of the image) and
    keeps the candidates scoring at least ``threshold``.
``learned`` (ground-truth free at test time)
    A logistic regression over per-candidate features (:mod:`.features`) trained on the *training*
    split's proposals — the only place ground truth enters — keeps candidates whose predicted probability
    of being mostly defect reaches a threshold tuned on the training split.

Every strategy returns a :class:`Selection`; :func:`render` turns it into a map: ``binary`` (the union,
0/1, the default), ``soft`` (per pixel the largest probability ``sigmoid(logit)`` among the chosen
candidates, ``1 - sigmoid`` for negated ones) or ``score`` (GT-free strategies: per pixel the largest
candidate score, a graded map whose threshold sweep follows the strategy's confidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from defectbench.errors import ConfigError
from defectbench.methods.sam.proposals import Proposals

ORACLE_STRATEGIES = ("oracle-combine", "oracle-best")
GT_FREE_STRATEGIES = ("prior", "learned")
STRATEGIES = ORACLE_STRATEGIES + GT_FREE_STRATEGIES
OUTPUTS = ("binary", "soft", "score")


def is_oracle(strategy: str) -> bool:
    """Whether a strategy reads the ground truth of the image it selects for."""
    return strategy in ORACLE_STRATEGIES


@dataclass
class Selection:
    """Chosen candidates ``(proposal index, negated)``, their union, and per-candidate scores if any."""

    chosen: list[tuple[int, bool]]
    union: np.ndarray
    jaccard: float | None = None
    scores: dict[tuple[int, bool], float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# the union-Jaccard search, on "atoms" (groups of pixels with the same membership in every proposal)


@dataclass
class AtomProblem:
    """Candidates as coverage vectors over atoms, with each atom's ground-truth and background pixel counts."""

    cover: np.ndarray  # K x A bool: candidate k covers atom a
    fg: np.ndarray  # A   ground-truth pixels per atom
    bg: np.ndarray  # A   other pixels per atom
    n_gt: int

    def jaccard(self, covered: np.ndarray) -> float:
        """``J`` of the union covering the atoms ``covered``."""
        if self.n_gt == 0:
            return 1.0 if not covered.any() else 0.0
        inter = float(self.fg[covered].sum())
        return inter / (self.n_gt + float(self.bg[covered].sum()))


def atom_problem(cands: np.ndarray, gt: np.ndarray) -> AtomProblem:
    """Group pixels by their membership in every candidate (``K x H x W`` bool) and count GT pixels per group."""
    k = cands.shape[0]
    flat = cands.reshape(k, -1)
    packed = np.packbits(flat, axis=0).T  # P x ceil(K/8): each pixel's membership signature
    sig = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1])))[:, 0]
    uniq, inverse = np.unique(sig, return_inverse=True)
    n_atoms = len(uniq)
    g = gt.reshape(-1).astype(np.int64)
    fg = np.bincount(inverse, weights=g, minlength=n_atoms).astype(np.int64)
    size = np.bincount(inverse, minlength=n_atoms).astype(np.int64)
    first = np.zeros(n_atoms, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]  # a representative pixel of each atom
    cover = flat[:, first]
    return AtomProblem(cover=cover, fg=fg, bg=size - fg, n_gt=int(g.sum()))


class _Search:
    """Incremental evaluation of candidate sets on an :class:`AtomProblem`."""

    def __init__(self, prob: AtomProblem) -> None:
        self.prob = prob
        self.cover = prob.cover
        self.cover_f = prob.cover.astype(np.float64)
        self.fg_c = self.cover_f @ prob.fg

    def counts(self, chosen: list[int]) -> np.ndarray:
        cnt = np.zeros(self.cover.shape[1], dtype=np.int64)
        for c in chosen:
            cnt += self.cover[c]
        return cnt

    def value(self, cnt: np.ndarray) -> float:
        return self.prob.jaccard(cnt > 0)

    def add_values(self, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every candidate: ``J`` after adding it, and the GT / background pixels it would newly cover."""
        covered = cnt > 0
        new = self.cover_f * (~covered)
        g_new, b_new = new @ self.prob.fg, new @ self.prob.bg
        inter = self.prob.fg[covered].sum() + g_new
        union = self.prob.n_gt + self.prob.bg[covered].sum() + b_new
        return inter / union, g_new, b_new

    def forward(self, chosen: list[int], by: str) -> list[int]:
        """Add candidates while ``J`` rises: the one raising it most (``by="gain"``) or of best precision."""
        chosen = list(chosen)
        cnt = self.counts(chosen)
        best = self.value(cnt)
        while True:
            j, g_new, b_new = self.add_values(cnt)
            if by == "gain":
                key = j.copy()
            else:
                key = np.divide(g_new, g_new + b_new, out=np.zeros_like(g_new), where=g_new > 0)
            key[(j <= best + 1e-12) | (g_new == 0)] = -np.inf
            key[chosen] = -np.inf
            if not np.isfinite(key).any():
                return chosen
            c = int(np.argmax(key))
            chosen.append(c)
            cnt += self.cover[c]
            best = j[c]

    def backward(self, chosen: list[int]) -> list[int]:
        """Drop candidates while that raises ``J`` (the drop raising it most first)."""
        chosen = list(chosen)
        cnt = self.counts(chosen)
        best = self.value(cnt)
        while chosen:
            vals = [self.value(cnt - self.cover[c]) for c in chosen]
            i = int(np.argmax(vals))
            if vals[i] <= best + 1e-12:
                break
            cnt -= self.cover[chosen[i]]
            best = vals[i]
            chosen.pop(i)
        return chosen

    def local(self, chosen: list[int]) -> list[int]:
        """1-opt local search: add, drop or swap one candidate while ``J`` rises."""
        chosen = list(chosen)
        cnt = self.counts(chosen)
        best = self.value(cnt)
        k = self.cover.shape[0]
        improved = True
        while improved:
            improved = False
            j, g_new, _ = self.add_values(cnt)
            j[chosen] = -1.0
            c = int(np.argmax(j)) if k else 0
            if k and j[c] > best + 1e-12:
                chosen.append(c)
                cnt += self.cover[c]
                best, improved = j[c], True
                continue
            for c in list(chosen):
                v = self.value(cnt - self.cover[c])
                if v > best + 1e-12:
                    chosen.remove(c)
                    cnt -= self.cover[c]
                    best, improved = v, True
                    break
            if improved:
                continue
            for c_out in list(chosen):
                base = cnt - self.cover[c_out]
                j, _, _ = self.add_values(base)
                j[chosen] = -1.0
                c_in = int(np.argmax(j))
                if j[c_in] > best + 1e-12:
                    chosen[chosen.index(c_out)] = c_in
                    cnt = base + self.cover[c_in]
                    best, improved = j[c_in], True
                    break
        return chosen


def greedy_union(prob: AtomProblem, seeds: int = 16) -> list[int]:
    """Maximise union Jaccard by greedy searches from several starts, each refined by 1-opt local search.

    Starts: forward selection by largest ``J`` gain, forward selection by precision of the newly covered
    pixels (so that several exact pieces beat one loose cover), backward elimination from all candidates,
    and forward selection by gain from each of the ``seeds`` individually best candidates. The best result
    is returned (sorted candidate indices).
    """
    k = prob.cover.shape[0]
    if prob.n_gt == 0 or k == 0:
        return []
    search = _Search(prob)
    useful = [c for c in range(k) if search.fg_c[c] > 0]
    single, _, _ = search.add_values(np.zeros(prob.cover.shape[1], dtype=np.int64))
    top = [int(c) for c in np.argsort(-single)[:seeds] if search.fg_c[c] > 0]
    results = [search.forward([], "gain"), search.forward([], "precision"), search.backward(useful)]
    results += [search.forward([c], "gain") for c in top]
    results = [search.local(r) for r in results]
    values = [search.value(search.counts(r)) for r in results]
    return sorted(results[int(np.argmax(values))])


def exhaustive_union(prob: AtomProblem, max_candidates: int = 20) -> list[int]:
    """The optimal candidate set by trying every subset (Gray-code order); for small problems and tests."""
    k = prob.cover.shape[0]
    if prob.n_gt == 0 or k == 0:
        return []
    if k > max_candidates:
        raise ValueError(f"{k} candidates is too many for exhaustive search (limit {max_candidates})")
    count = np.zeros(prob.cover.shape[1], dtype=np.int64)
    inside = np.zeros(k, dtype=bool)
    best, best_set = prob.jaccard(count > 0), np.zeros(k, dtype=bool)
    for i in range(1, 2 ** k):
        bit = (i & -i).bit_length() - 1  # Gray code: flip one candidate per step
        inside[bit] = ~inside[bit]
        count += prob.cover[bit] if inside[bit] else -prob.cover[bit].astype(np.int64)
        v = prob.jaccard(count > 0)
        if v > best + 1e-12:
            best, best_set = v, inside.copy()
    return [int(i) for i in np.flatnonzero(best_set)]


# ---------------------------------------------------------------------------------------------------------
# strategies


def candidates(masks: np.ndarray, negations: bool = True) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    """Return the candidate masks (proposals, then their complements) and their ``(index, negated)`` origin."""
    n = masks.shape[0]
    origin = [(i, False) for i in range(n)]
    if not negations:
        return masks, origin
    return np.concatenate([masks, ~masks]), origin + [(i, True) for i in range(n)]


def _union(cands: np.ndarray, idx: list[int], shape: tuple[int, int]) -> np.ndarray:
    if not idx:
        return np.zeros(shape, dtype=bool)
    return np.any(cands[idx], axis=0)


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard index of two boolean masks (1 when both are empty)."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def oracle_combine(masks: np.ndarray, gt: np.ndarray, negations: bool = True, search: str = "greedy") -> Selection:
    """The union of proposals (as is or negated) of maximal Jaccard with ``gt`` (see the module docstring)."""
    gt = np.asarray(gt, dtype=bool)
    cands, origin = candidates(np.asarray(masks, dtype=bool), negations)
    useful = [k for k in range(len(cands)) if np.logical_and(cands[k], gt).any()]
    if not useful or not gt.any():
        return Selection([], np.zeros(gt.shape, dtype=bool), jaccard(np.zeros_like(gt), gt))
    prob = atom_problem(cands[useful], gt)
    if search == "greedy":
        pick = greedy_union(prob)
    elif search == "exhaustive":
        pick = exhaustive_union(prob)
    else:
        raise ConfigError(f"unknown search {search!r}; use greedy or exhaustive")
    chosen = [useful[i] for i in pick]
    union = _union(cands, chosen, gt.shape)
    return Selection([origin[c] for c in chosen], union, jaccard(union, gt))


def oracle_best(masks: np.ndarray, gt: np.ndarray) -> Selection:
    """The single proposal (as is) of maximal Jaccard with ``gt``; empty when ``gt`` is."""
    gt = np.asarray(gt, dtype=bool)
    masks = np.asarray(masks, dtype=bool)
    if not gt.any() or not len(masks):
        return Selection([], np.zeros(gt.shape, dtype=bool), jaccard(np.zeros_like(gt), gt))
    flat = masks.reshape(len(masks), -1)
    g = gt.reshape(-1)
    inter = flat[:, g].sum(1)
    union = flat.sum(1) + g.sum() - inter
    j = inter / np.maximum(union, 1)
    i = int(np.argmax(j))
    return Selection([(i, False)], masks[i].copy(), float(j[i]))


@dataclass(frozen=True)
class PriorParams:
    """Constants of the ``prior`` strategy.

    Chosen once by a small grid search (contrast scale 0.5/1/2, maximal area 0.1/0.25, threshold 0.2-0.6)
    for pooled pixel F1 on every third image of SD-saliency-900's *training* split, with proposals derived
    from its ground truth (no trained SAM weights are available here); the optimum was flat (F1 0.80 for
    scale 1, area 0.25, threshold 0.3-0.4).
    """

    contrast_scale: float = 1.0  # contrast (in image std units) giving a score of 1 - 1/e
    max_area: float = 0.25  # candidates larger than this fraction of the image are penalised
    min_area_px: int = 16  # and those smaller than this many pixels
    threshold: float = 0.4
    negations: bool = True


def prior_scores(feats: np.ndarray, names: list[str], params: PriorParams = PriorParams()) -> np.ndarray:
    """Score candidates from their feature rows: contrast prior times size prior, in [0, 1)."""
    col = {n: i for i, n in enumerate(names)}
    contrast = np.abs(feats[:, col["contrast"]])
    area = feats[:, col["area_frac"]]
    px = feats[:, col["area_px"]]
    s_contrast = 1.0 - np.exp(-contrast / params.contrast_scale)
    s_size = np.where(area > params.max_area, np.exp(-(area - params.max_area) / 0.05), 1.0)
    s_size = s_size * np.where(px < params.min_area_px, px / params.min_area_px, 1.0)
    return s_contrast * s_size


def select_by_scores(cands: np.ndarray, origin: list[tuple[int, bool]], scores: np.ndarray,
                     threshold: float) -> Selection:
    """Keep the candidates scoring at least ``threshold``."""
    idx = [int(i) for i in np.flatnonzero(scores >= threshold)]
    shape = cands.shape[1:]
    return Selection([origin[i] for i in idx], _union(cands, idx, shape),
                     scores={origin[i]: float(scores[i]) for i in range(len(origin))})


# ---------------------------------------------------------------------------------------------------------
# maps


def render(sel: Selection, proposals: Proposals | None, output: str = "binary",
           masks: np.ndarray | None = None) -> np.ndarray:
    """Turn a selection into a float32 map in [0, 1] (see the module docstring for the three outputs)."""
    shape = sel.union.shape
    if output == "binary":
        return sel.union.astype(np.float32)
    if output == "soft":
        if proposals is None or not proposals.has_logits():
            raise ConfigError("--output soft needs proposals with mask logits (made by --generator fast)")
        out = np.zeros(shape, dtype=np.float32)
        for (i, neg) in sel.chosen:
            p = proposals.soft_masks([i])[0]
            np.maximum(out, 1.0 - p if neg else p, out=out)
        return out
    if output == "score":
        if not sel.scores:
            raise ConfigError("--output score is for the ground-truth-free strategies (prior, learned)")
        if masks is None:
            raise ValueError("score maps need the proposal masks")
        out = np.zeros(shape, dtype=np.float32)
        for (i, neg), s in sel.scores.items():
            m = ~masks[i] if neg else masks[i]
            np.maximum(out, np.where(m, np.float32(s), 0.0), out=out)
        return out
    raise ConfigError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
