"""Choosing the hybrid's solver, hyperparameters and modality weights on the user's own data.

``train.tune: auto`` (the default) runs this before the final fit, within
``train.tune_budget_s`` seconds; ``--tune`` runs the same search to its end, whatever the
budget. Nothing here is fitted to a benchmark: every choice is scored on a split of the
training interactions.

Protocols (NDCG@``eval_k``):

- warm: ``train.validation`` of each user's items (users with >= 3) are held out; the model
  fits the rest and ranks every item, the fitted ones masked.
- cold: ``COLD_SHARE`` of the items with interactions lose all of them; the model fits the
  rest, and the users who had them rank just the held items, from content alone (as a new
  upload is ranked).

Search: the defaults first, then a coordinate search, one parameter at a time over its grid,
keeping a move only when it scores ``MIN_GAIN`` higher; then, on the cold protocol, which
modalities to use, the ridge, and finer modality weights. The budget is
``train.tune_budget_s``, cut after the first fit to ``train.tune_budget_fits`` times that
fit (``MIN_BUDGET_S`` at least): on large data one validation fit is a large part of the
final one, and a search longer than the fit would double the cost of every train. Before
each fit the time it will take is predicted from the fits so far of the same kind; a phase
stops when that would overrun its share of the budget (the first fit always runs). ALS fits
after the first start from the best warm fit's item factors (widened or narrowed to their
factor count), and the final fit starts from them too (``als_warm_iterations`` instead of
``als_iterations``): the search's cost is partly paid back. Fewer than ``MIN_USERS``
validation users: no search. Above ``train.tune_max_interactions`` the search runs on a
random subset of users holding about that many interactions. The factor count is searched
there too: fewer users favour fewer factors, so the subset errs towards the cheaper model,
and the final fit's cost grows with the count chosen (a warm start keeps it to
``als_warm_iterations`` iterations).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import InputError
from .weighting import heavy_tailed

# coordinate grids per solver, searched in this order (the configured value is always a candidate)
GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "closed": {"l2": (50.0, 100.0, 200.0, 400.0, 800.0), "content_prior": (0.0, 10.0, 30.0, 100.0),
               "dim": (128, 256, 384, 512)},
    # factors first: the largest single lever (Rendle et al. 2022: iALS keeps gaining with
    # dimension once regularised; generated S2: 64 -> 128 factors moved NDCG@10 by +25%, reg
    # and alpha by under 2%), and on a budget the search may not reach the last key
    "als": {"als_factors": (64, 128, 256), "als_reg": (0.01, 0.1, 1.0, 10.0), "als_alpha": (1.0, 3.0, 10.0, 30.0)},
    "sgd": {"dim": (64, 128, 256), "dropout": (0.1, 0.3, 0.5), "weight_decay": (0.0, 1e-4)},
}
COLD_GRID = {"ridge": (0.1, 1.0, 10.0, 100.0)}
MIN_GAIN = 0.002  # a move is kept only when it scores this much (relative) higher: less chasing of noise
WEIGHTING_GAIN = 0.02  # weights kept as given unless log1p or binary scores this much higher: on MovieLens
# ratings the three were within 1.2% (noise), and a switch there only cost the search its later fits
COLD_SHARE = 0.1
MIN_COLD_ITEMS = 20
MAX_EVAL_USERS = 5000  # validation users scored per fit (a random subset above this)
MIN_USERS = 200  # validation users below which the search is not run (the configured values are kept)
WARM_SHARE = 0.75  # of the budget the warm search may use; the rest is the cold search's (at 0.65 a
# 128-factor fit on generated S2 missed its phase by 0.2 s; the cold phase at scale gets ~1-2 fits either way)
PAD_SCALE = 0.1  # a widened warm start's new columns, relative to the old ones' RMS (see resize_factors)
EDGE_STEPS = 2  # steps past a grid's edge while the score keeps rising
MIN_BUDGET_S = 20.0  # train.tune_budget_fits never cuts the budget below this (small data: the grid ends first)


@dataclass
class Search:
    """What was tried and how long it took; the budget is checked before every fit.

    Fits are cheap to repeat: a fit whose parameters and data match the last one of its
    protocol but for the content map (the ridge: the cold search varies it) reuses that fit's
    factors, ALS or closed form; any other ALS fit starts from the best warm fit's item
    factors (``als_warm_iterations``), resized to its factor count (:func:`resize_factors`)."""

    budget_s: float | None  # None: no limit (--tune)
    progress: Callable[[str], None]
    per_fit: float = 0.0  # > 0: the budget shrinks to this many first fits (MIN_BUDGET_S at least)
    share: float = 1.0  # of the budget the current phase may use up to (the warm phase leaves some to the cold one)
    t0: float = field(default_factory=time.perf_counter)
    fit_seconds: dict[str, list[float]] = field(default_factory=dict)  # by kind: "<solver>:<start>"
    tried: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    budget_rule: str = ""
    als_fits: dict[str, tuple[str, Any]] = field(default_factory=dict)  # protocol -> (key, ALS (x, y) or closed (P, Q))
    als_init: np.ndarray | None = None  # item factors of the best warm ALS fit
    best_warm: float = -1.0
    prep_cache: dict = field(default_factory=dict)  # the content preparation, shared by fits on one split
    warm_ratio: float = 1.0  # als_warm_iterations / als_iterations: a warm start's predicted share of a fit
    k: int = 20  # the cut-off every fit is scored at (hybrid.eval_k)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def affordable(self, kind: str, size: float = 1.0) -> bool:
        """Whether a fit of ``kind`` fits in what is left of the phase's budget; ``size``: its
        cost relative to the fits recorded at size 1 (ALS: factors / the first fit's factors;
        S2 measured 1.7x the time from 64 to 128 factors, 2.4x from 128 to 256)."""
        if self.budget_s is None or not self.fit_seconds:
            return True  # the first fit (the configured values) always runs: it is the reference
        solver = kind.split(":")[0]
        past = self.fit_seconds.get(kind)
        if not past:  # a kind not fitted yet: a fit from factors runs als_warm_iterations of the random one's
            past = [v * (self.warm_ratio if not kind.endswith(":random") else 1.0)
                    for k, vs in self.fit_seconds.items() if k.startswith(solver + ":") for v in vs] \
                or [v for vs in self.fit_seconds.values() for v in vs]
        predicted = 1.2 * max(past) * size
        limit = self.budget_s * self.share
        if self.elapsed() + predicted > limit:
            if self.stopped is None:
                self.stopped = (f"budget: a fit takes ~{predicted:.1f}s and {max(0.0, limit - self.elapsed()):.1f}s of "
                                f"{'' if self.share == 1 else f'{self.share:.0%} of '}the {self.budget_s:.0f}s "
                                f"budget ({self.budget_rule}) were left")
            return False
        return True

    def known(self, protocol: str, params: dict[str, Any]) -> float | None:
        """The score of a configuration already fitted under ``protocol`` (no fit twice)."""
        key = _key(params)
        return next((t["ndcg"] for t in self.tried if t["protocol"] == protocol and _key(t["params"]) == key), None)

    def record(self, protocol: str, params: dict[str, Any], score: float, seconds: float, kind: str,
               size: float = 1.0) -> None:
        first = not self.tried
        self.fit_seconds.setdefault(kind, []).append(seconds / size)
        self.tried.append({"protocol": protocol, "params": params, "ndcg": round(score, 5), "seconds": round(seconds, 2),
                           "start": kind.split(":")[1]})
        shown = {k: v for k, v in params.items() if k != "content_blocks"}
        self.progress(f"tune: {protocol} {shown} -> NDCG@{self.k} {score:.4f} ({seconds:.1f}s, {kind.split(':')[1]})")
        if first and self.budget_s is not None and self.per_fit > 0:
            cap = self.budget_s
            self.budget_s = min(cap, max(MIN_BUDGET_S, self.per_fit * seconds))
            self.budget_rule = (f"train.tune_budget_fits={self.per_fit:g} x the first fit's {seconds:.1f}s, at least "
                                f"{MIN_BUDGET_S:g}s, at most train.tune_budget_s={cap:g}")
            self.progress(f"tune: budget {self.budget_s:.0f}s ({self.budget_rule})")


def resize_factors(y: np.ndarray, factors: int, seed: int, *, pad_scale: float = PAD_SCALE) -> np.ndarray:
    """(n_items, factors) item factors to warm-start a fit of another factor count from
    ``y`` (n_items, d): more factors keep ``y`` and add columns of small random values
    (``pad_scale`` x y's RMS: the fit grows them where the data has more to say); fewer keep
    y's top ``factors`` principal directions (the subspace that carries most of its scores)."""
    d = y.shape[1]
    if factors == d:
        return y
    if factors < d:
        _, _, vt = np.linalg.svd(y.astype(np.float64), full_matrices=False)
        return (y @ vt[:factors].T).astype(np.float32)
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) or 1.0
    extra = np.random.default_rng(seed).standard_normal((y.shape[0], factors - d)) * (pad_scale * rms)
    return np.hstack([y, extra.astype(np.float32)])


def _key(params: dict[str, Any]) -> str:
    import json

    return json.dumps({k: v for k, v in params.items() if k != "content_blocks"}, sort_keys=True, default=str)


def _step(v: Any, ratio: float) -> Any:
    """``v`` one grid step further, kept to 4 significant digits (an int stays an int)."""
    return int(round(v * ratio)) if isinstance(v, int) else float(f"{v * ratio:.4g}")


def subsample_users(seen, max_nnz: int, seed: int):
    """(CSR of a random subset of users holding about ``max_nnz`` interactions, share kept)."""
    if seen.nnz <= max_nnz:
        return seen, 1.0
    rng = np.random.default_rng(seed)
    share = max_nnz / seen.nnz
    keep = np.flatnonzero(rng.random(seen.shape[0]) < share)
    return seen[keep], float(share)


def cold_split(seen, share: float, seed: int, *, at_least: int = 0):
    """(fit CSR without the held items' interactions, held CSR of only them, held item rows):
    ``share`` of the items with interactions, or ``at_least`` of them (up to a quarter) on a
    small catalogue, so that the ranking among them says something."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed + 1)
    active = np.flatnonzero(np.diff(seen.tocsc().indptr) > 0)
    n_held = max(int(round(len(active) * share)), min(at_least, len(active) // 4))
    held_items = np.sort(rng.choice(active, size=n_held, replace=False)) if n_held else np.zeros(0, np.int64)
    is_held = np.zeros(seen.shape[1], bool)
    is_held[held_items] = True
    coo = seen.tocoo()
    h = is_held[coo.col]
    mk = lambda m: sp.csr_matrix((coo.data[m], (coo.row[m], coo.col[m])), shape=seen.shape)  # noqa: E731
    return mk(~h), mk(h), held_items


def _eval_users(held, seed: int) -> np.ndarray:
    """The users with held-out interactions, at most ``MAX_EVAL_USERS`` of them at random
    (NDCG's standard error is then ~0.005; scoring every user would cost users x items)."""
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    if len(users) > MAX_EVAL_USERS:
        users = np.sort(np.random.default_rng(seed + 2).choice(users, MAX_EVAL_USERS, replace=False))
    return users


def warm_score(model, fit, held, k: int, *, seed: int = 0) -> float:
    """NDCG@k of the held-out items, every item ranked, the fitted ones excluded (in batches
    of users: memory is batch x items, never users x items)."""
    from .metrics import metrics_at_k, rank_users

    users = _eval_users(held, seed)
    top = rank_users(model.score, users, k=k, exclude=fit)
    return metrics_at_k(top, held[users], [k], n_candidates=held.shape[1])[k]["ndcg"]


def cold_score(model, held, held_items: np.ndarray, k: int, *, seed: int = 0) -> float:
    """NDCG@k of the held items ranked among themselves for the users who had them."""
    from .metrics import metrics_at_k, rank_users

    users = _eval_users(held, seed)
    k = min(k, len(held_items))
    if getattr(model, "user_vectors", None) is not None and getattr(model, "item_vectors", None) is not None:
        # a factor model: score the held items alone, not every item
        vecs = model.item_vectors[held_items].T
        r = rank_users(lambda rows: model.user_vectors[rows] @ vecs, users, k=k)
        top = np.where(r >= 0, held_items[np.maximum(r, 0)], -1)
        return metrics_at_k(top, held[users], [k], n_candidates=len(held_items))[k]["ndcg"]
    top = rank_users(model.score, users, k=k, candidates=held_items)
    return metrics_at_k(top, held[users], [k], n_candidates=len(held_items))[k]["ndcg"]


def coordinate_search(score: float, start: dict[str, Any], grid: dict[str, tuple[Any, ...]],
                      evaluate: Callable[[dict[str, Any]], float | None], search: Search) -> tuple[float, dict[str, Any]]:
    """One pass over ``grid``'s keys in order, each over its values with the others held at the
    best so far (``start`` scored ``score``). A best value inside the grid is refined between
    its neighbours (:func:`_refine`); one at the grid's edge is followed one
    step further (the grid's end ratio) up to ``EDGE_STEPS`` times while it keeps improving.
    ``evaluate`` returns None when the budget is spent. Returns (best score, best parameters)."""
    best = dict(start)
    for key, values in grid.items():
        for v in values:
            if v == best[key] or search.stopped:
                continue
            s = evaluate({**best, key: v})
            if s is not None and s > score * (1 + MIN_GAIN):
                score, best = s, {**best, key: v}
        score, best = _refine(key, values, score, best, evaluate, search)
        lo, hi = min(values), max(values)
        for edge, ratio in ((hi, values[-1] / values[-2]), (lo, values[0] / values[1])):
            if best[key] != edge or edge <= 0 or len(values) < 2:
                continue
            v = edge
            for _ in range(EDGE_STEPS):
                v = _step(v, ratio)
                s = None if search.stopped else evaluate({**best, key: v})
                if s is None or s <= score * (1 + MIN_GAIN):
                    break
                score, best = s, {**best, key: v}
    return score, best


def _refine(key: str, values: tuple[Any, ...], score: float, best: dict[str, Any],
            evaluate: Callable[[dict[str, Any]], float | None], search: Search) -> tuple[float, dict[str, Any]]:
    """A best float strictly inside its grid: try the geometric midpoints with its two
    neighbours (a grid of factor-2 steps is coarse where the score peaks; integers such as
    ``dim`` are left alone, their fits cost more and their scores move less)."""
    v = best[key]
    grid = sorted(values)
    if not isinstance(v, float) or v not in grid or v in (grid[0], grid[-1]):
        return score, best
    i = grid.index(v)
    for nb in (grid[i - 1], grid[i + 1]):
        if nb <= 0 or search.stopped:
            continue
        mid = {**best, key: float(f"{(v * nb) ** 0.5:.4g}")}
        s = evaluate(mid)
        if s is not None and s > score * (1 + MIN_GAIN):
            return s, mid
    return score, best


def tune_hybrid(seen, content, cfg, *, device: str, progress: Callable[[str], None],
                budget_s: float | None = None, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Choose the hybrid's solver, hyperparameters and (with ``blocks``, the fused vector's
    modality layout) modality weights. Returns the overrides for the final fit plus a
    ``report`` {chosen, tried, warm_ndcg, cold_ndcg, budget_s, seconds, stopped, users_share}."""
    from .models.hybrid import _holdout, choose_solver
    from .models.registry import build_model

    tc, hc = cfg.train, cfg.train.hybrid
    if tc.validation <= 0:
        raise InputError("tuning needs a validation split: set train.validation above 0 (or train.tune=off)")
    search = Search(budget_s, progress, per_fit=tc.tune_budget_fits,
                    warm_ratio=min(1.0, hc.als_warm_iterations / max(hc.als_iterations, 1)),
                    budget_rule=f"train.tune_budget_s={budget_s:g}" if budget_s is not None else "")
    k_eval = search.k = hc.eval_k
    kdim = 0 if content is None else (min(hc.content_dim, content.shape[1]) if hc.content_dim else content.shape[1])
    n_active = int((np.diff(seen.tocsc().indptr) > 0).sum())
    solver, why = choose_solver({"solver": hc.solver, "closed_max": hc.closed_max}, n_users=seen.shape[0],
                                n_active=n_active, content_dim=kdim)
    solvers = [solver] + (["als"] if hc.solver == "auto" and solver == "closed" else [])
    if any(s in ("closed", "sgd") for s in solvers):
        import torch  # noqa: F401  (before the clock: ~2 s, more from a cold disk, is no fit's cost)

        search.t0 = time.perf_counter()
    sub, share = subsample_users(seen, tc.tune_max_interactions, cfg.runtime.seed)
    if share < 1:
        progress(f"tune: on {sub.shape[0]} of {seen.shape[0]} users ({sub.nnz} interactions, "
                 f"train.tune_max_interactions={tc.tune_max_interactions})")
    progress(f"tune: solvers {solvers} ({why}); budget "
             f"{'none (--tune)' if budget_s is None else f'{budget_s:g}s (train.tune_budget_s)'}"
             + (f", cut after the first fit to {tc.tune_budget_fits:g}x it ({MIN_BUDGET_S:g}s at least)"
                if budget_s is not None and tc.tune_budget_fits > 0 else ""))
    fit, held = _holdout(sub, tc.validation, cfg.runtime.seed)
    n_val = int((np.diff(held.indptr) > 0).sum())
    if n_val < MIN_USERS:
        why = (f"{n_val} users have validation interactions; at least {MIN_USERS} are needed to tell "
               "configurations apart (NDCG on fewer is mostly noise)")
        progress(f"tune: skipped ({why}); the configured values are used")
        return {"report": {"chosen": {}, "skipped": why, "tried": []}}
    base = {"content_blocks": blocks} if blocks else {}

    def run(params: dict[str, Any], protocol: str, data, score_fn, must: bool = False) -> float | None:
        full = {**{k: getattr(hc, k) for k in GRIDS.get(params["solver"], {})}, "ridge": hc.ridge, **params}
        if protocol == "warm":
            full.pop("ridge")  # the warm protocol does not see it: one configuration, one fit
        done = search.known(protocol, full)
        if done is not None:
            return done
        fit_kw: dict[str, Any] = {}
        start, akey = "random", ""
        if params["solver"] == "als":
            akey = _key({**{k: full[k] for k in GRIDS["als"]}, "weighting": full.get("weighting")})
            cached = search.als_fits.get(protocol)
            if cached is not None and cached[0] == akey:
                fit_kw, start = {"als_given": cached[1]}, "given"
            elif search.als_init is not None:
                fit_kw, start = {"als_init": resize_factors(search.als_init, full["als_factors"], cfg.runtime.seed)}, "warm"
        elif params["solver"] == "closed":
            # the ridge maps content to the factors and changes nothing else: a fit that differs
            # from the last one of its protocol only there reuses its factors (on generated 1200
            # items the cold search's ridges had cost one items x items solve each, and under
            # load the budget ended it after the default ridge)
            akey = _key({k: v for k, v in full.items() if k != "ridge"})
            cached = search.als_fits.get(protocol)
            if cached is not None and cached[0] == akey:
                fit_kw, start = {"closed_given": cached[1]}, "given"
        kind = f"{params['solver']}:{start}"
        size = full["als_factors"] / hc.als_factors if params["solver"] == "als" else 1.0
        if not must and not search.affordable(kind, size):
            return None
        t = time.perf_counter()
        m = build_model("hybrid", tc, seed=cfg.runtime.seed, device=device, refit=False, **params)
        m.fit(data, content, prep_cache=search.prep_cache, keep_als=True, **fit_kw)
        score = score_fn(m)
        search.record(protocol, full, score, time.perf_counter() - t, kind, size)
        if getattr(m, "closed_", None) is not None:
            search.als_fits[protocol] = (akey, m.closed_)
        if getattr(m, "als_", None) is not None:
            search.als_fits[protocol] = (akey, m.als_)
            if protocol == "warm" and score > search.best_warm:
                search.best_warm, search.als_init = score, m.als_[1]
        return score

    def warm(params: dict[str, Any], must: bool = False) -> float | None:
        return run(params, "warm", fit, lambda m: warm_score(m, fit, held, k_eval, seed=cfg.runtime.seed), must)

    # 1. warm: each solver's defaults, then a coordinate search around the best, in WARM_SHARE
    # of the budget when content leaves a cold search to do
    search.share = WARM_SHARE if content is not None else 1.0
    best_score, best = -1.0, {}
    # train.weighting auto: heavy-tailed weights (play counts, watch seconds) are tried as
    # given, as log1p and binary with each solver (avrec/weighting.py: on taste-free heavy-tailed counts
    # the closed form scored 0.13 linear and 0.30 binary, ALS the other way round, through its
    # confidence); ratings, event weights and a binary log are used as given
    weightings = ("linear", "log", "binary") if tc.weighting == "auto" and heavy_tailed(fit.data) else (None,)
    scored: list[tuple[float, dict[str, Any]]] = []
    for s in solvers:
        for how in weightings:
            params = {"solver": s, **({"weighting": how} if how else {})}
            # the first solver's weightings run whatever the budget says, like the first fit: on
            # play counts they decide most (generated lognormal counts: 0.09 linear, 0.26
            # binary), and one fit slowed by a busy machine (20 s where 1.5 s was usual) had
            # otherwise spent the budget and shipped linear
            score = warm({**base, **params}, must=s == solvers[0] and how is not None)
            if score is not None:
                scored.append((score, params))
    if scored:
        best_score, best = max((t for t in scored if t[1].get("weighting") in (None, "linear")),
                               key=lambda t: t[0], default=max(scored, key=lambda t: t[0]))
        other_score, other = max(scored, key=lambda t: t[0])
        if other_score > best_score * (1 + WEIGHTING_GAIN):
            best_score, best = other_score, other
    grid = dict(GRIDS[best["solver"]])
    best_score, best = coordinate_search(best_score, {**best, **{k: getattr(hc, k) for k in grid}}, grid,
                                         lambda over: warm({**base, **over}), search)
    warm_best = dict(best)

    # 2. cold: how items without interactions are placed, from content (ridge, modality weights)
    cold_best = None
    warm_stop, search.share, search.stopped = search.stopped, 1.0, None
    if content is not None:
        cfit, cheld, items = cold_split(sub, COLD_SHARE, cfg.runtime.seed, at_least=MIN_COLD_ITEMS)
        n_cold_users = int((np.diff(cheld.indptr) > 0).sum())
        if len(items) >= MIN_COLD_ITEMS // 2 and n_cold_users >= MIN_USERS // 2:
            def cold(params: dict[str, Any]) -> float | None:
                return run(params, "cold", cfit, lambda m: cold_score(m, cheld, items, k_eval, seed=cfg.runtime.seed))

            over: dict[str, Any] = {**warm_best, "ridge": hc.ridge}
            cold_best = cold({**base, **over})
            names = [b["modality"] for b in blocks or []]
            if cold_best is not None and len(names) > 1:
                # which modalities predict: each alone, and all but each, against all of them
                # (a weight only matters through the ridge, so subsets come before the ridge)
                for subset in [[m] for m in names] + ([[n for n in names if n != m] for m in names] if len(names) > 2 else []):
                    w = {m: float(m in subset) for m in names}
                    score = cold({**base, **over, "modality_weights": w})
                    if score is not None and score > cold_best * (1 + MIN_GAIN):
                        cold_best, over = score, {**over, "modality_weights": w}
            if cold_best is not None:
                cold_best, over = coordinate_search(cold_best, over, COLD_GRID, lambda o: cold({**base, **o}), search)
            weights = over.get("modality_weights") or {m: 1.0 for m in names}
            for m in [m for m in names if weights[m] > 0] if sum(v > 0 for v in weights.values()) > 1 else []:
                for v in (0.25, 4.0):  # finer: one kept modality turned down or up
                    w = {**weights, m: v}
                    score = None if cold_best is None else cold({**base, **over, "modality_weights": w})
                    if score is not None and score > cold_best * (1 + MIN_GAIN):
                        cold_best, over, weights = score, {**over, "modality_weights": w}, w
            best = over if cold_best is not None else best
        else:
            progress(f"tune: cold search skipped ({len(items)} items held out, {MIN_COLD_ITEMS // 2} needed; "
                     f"{n_cold_users} users had them, {MIN_USERS // 2} needed)")
    search.stopped = "; ".join(x for x in (warm_stop and f"warm {warm_stop}",
                                           search.stopped and f"cold {search.stopped}") if x) or None
    chosen = {k: v for k, v in best.items() if k != "content_blocks"}
    report = {"chosen": chosen, "warm_ndcg": round(best_score, 5),
              "cold_ndcg": None if cold_best is None else round(cold_best, 5), "eval_k": k_eval,
              "budget_s": None if search.budget_s is None else round(search.budget_s, 1), "budget_rule": search.budget_rule,
              "seconds": round(search.elapsed(), 2), "stopped": search.stopped,
              "users_share": round(share, 4), "fits": len(search.tried), "tried": search.tried}
    progress(f"tune: chose {chosen} (warm NDCG@{k_eval} {best_score:.4f}"
             + ("" if cold_best is None else f", cold {cold_best:.4f}") + f") in {search.elapsed():.1f}s"
             + (f"; stopped by the {search.stopped}" if search.stopped else ""))
    found: dict[str, Any] = {**best, "report": report}
    if best.get("solver") == "als" and search.als_init is not None:
        # the final fit starts from them; the best-scoring fit may have another factor count
        # than the chosen one (a gain under MIN_GAIN is not a move)
        found["als_init"] = resize_factors(search.als_init, int(best.get("als_factors", hc.als_factors)),
                                           cfg.runtime.seed)
    return found
