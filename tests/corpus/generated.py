"""A third registry: PyMC models generated from a seed, the kinds users write most often
(regressions and hierarchies) with their pieces drawn at random, so that checks meet
combinations nobody wrote down.

Per seed: observations, groups and predictors of random sizes, data as arrays or
``pm.Data``; an intercept, maybe varying by group (centred, non-centred or
``ZeroSumNormal``, with a scale from one of eight positive families), maybe slopes (dense,
or one varying by group); a likelihood of one of eighteen families through its usual link
(identity, exp, logit), sometimes censored or truncated, with observed data drawn inside
its support; sometimes a ``Deterministic`` and a ``Potential``. ``describe(seed)`` says
what a seed drew.

``MODELS`` maps ``gen000``... to builders (same contract as ``tests.corpus.MODELS``):
``AOT_GENERATED_MODELS`` of them (default 60). ``CI`` is the subset ``tests/test_corpus.py``
checks; ``python -m tests.corpus.check --registry generated`` checks them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = ["CHANGES", "CI", "MODELS", "describe"]

#: a positive scale prior by name: (builder, its parameters drawn from rng)
SCALES: dict[str, Callable] = {
    "HalfNormal": lambda name, r: pm.HalfNormal(name, r.uniform(0.5, 3)),
    "HalfCauchy": lambda name, r: pm.HalfCauchy(name, r.uniform(0.5, 2)),
    "HalfStudentT": lambda name, r: pm.HalfStudentT(name, nu=r.uniform(2, 6), sigma=1.0),
    "Exponential": lambda name, r: pm.Exponential(name, r.uniform(0.5, 2)),
    "Gamma": lambda name, r: pm.Gamma(name, alpha=r.uniform(1.5, 4), beta=r.uniform(1, 3)),
    "LogNormal": lambda name, r: pm.LogNormal(name, 0.0, r.uniform(0.3, 1)),
    "InverseGamma": lambda name, r: pm.InverseGamma(name, alpha=3.0, beta=r.uniform(1, 3)),
    "Weibull": lambda name, r: pm.Weibull(name, alpha=r.uniform(1.5, 3), beta=1.0),
}

#: a location prior by name
LOCATIONS: dict[str, Callable] = {
    "Normal": lambda name, r, **kw: pm.Normal(name, 0.0, r.uniform(1, 5), **kw),
    "StudentT": lambda name, r, **kw: pm.StudentT(name, nu=r.uniform(3, 8), mu=0.0,
                                                  sigma=r.uniform(1, 3), **kw),
    "Laplace": lambda name, r, **kw: pm.Laplace(name, 0.0, r.uniform(0.5, 2), **kw),
    "Logistic": lambda name, r, **kw: pm.Logistic(name, 0.0, r.uniform(0.5, 2), **kw),
}


def _positive(eta):
    return pt.exp(eta)


def _likelihood(family: str, eta, n: int, r: np.random.Generator, censor: str, dims):
    """The observed variable ``y`` of ``family`` around the linear predictor ``eta``
    (link included), with data drawn inside its support."""
    def scale(name):
        return SCALES[r.choice(sorted(SCALES))](name, r)

    if family in ("Normal", "StudentT", "Laplace", "Logistic", "Gumbel", "SkewNormal",
                  "Cauchy"):
        sigma = scale("sigma")
        y = r.normal(0.5, 1.5, n)
        dist = {
            "Normal": lambda: pm.Normal.dist(eta, sigma),
            "StudentT": lambda: pm.StudentT.dist(nu=pm.Gamma("nu", 2.0, 0.1), mu=eta,
                                                 sigma=sigma),
            "Laplace": lambda: pm.Laplace.dist(eta, sigma),
            "Logistic": lambda: pm.Logistic.dist(eta, sigma),
            "Gumbel": lambda: pm.Gumbel.dist(eta, sigma),
            "SkewNormal": lambda: pm.SkewNormal.dist(mu=eta, sigma=sigma,
                                                     alpha=pm.Normal("alpha", 0, 2)),
            "Cauchy": lambda: pm.Cauchy.dist(eta, sigma),
        }[family]()
        if censor == "censored" and family != "SkewNormal":  # PyMC has no SkewNormal logcdf
            lo, hi = np.quantile(y, [0.1, 0.9])
            return pm.Censored("y", dist, lower=lo, upper=hi, observed=np.clip(y, lo, hi),
                               dims=dims)
        if censor == "truncated" and family in ("Normal", "StudentT", "Laplace", "Logistic"):
            lo = float(y.min()) - 0.5
            return pm.Truncated("y", dist, lower=lo, observed=y, dims=dims)
        return pm.modelcontext(None).register_rv(dist, "y", observed=y,
                                                 dims=(dims,) if dims else None)
    if family in ("LogNormal", "Gamma", "Weibull", "Exponential", "InverseGamma"):
        y = r.gamma(2.0, 1.0, n) + 0.05
        if family == "LogNormal":
            return pm.LogNormal("y", eta, scale("sigma"), observed=y, dims=dims)
        if family == "Gamma":
            shape = scale("shape")
            return pm.Gamma("y", alpha=shape, beta=shape / _positive(eta), observed=y,
                            dims=dims)
        if family == "Weibull":
            return pm.Weibull("y", alpha=scale("shape"), beta=_positive(eta), observed=y,
                              dims=dims)
        if family == "InverseGamma":
            return pm.InverseGamma("y", alpha=scale("shape") + 1, beta=_positive(eta),
                                   observed=y, dims=dims)
        return pm.Exponential("y", lam=pt.exp(-eta), observed=y, dims=dims)
    if family in ("Poisson", "NegativeBinomial", "ZeroInflatedPoisson"):
        y = r.poisson(3.0, n)
        if family == "Poisson":
            return pm.Poisson("y", _positive(eta), observed=y, dims=dims)
        if family == "NegativeBinomial":
            return pm.NegativeBinomial("y", mu=_positive(eta), alpha=scale("alpha"),
                                       observed=y, dims=dims)
        y[r.random(n) < 0.3] = 0
        return pm.ZeroInflatedPoisson("y", psi=pm.Beta("psi", 2, 2), mu=_positive(eta),
                                      observed=y, dims=dims)
    if family == "Binomial":
        trials = r.integers(5, 20, n)
        return pm.Binomial("y", n=trials, p=pm.math.invlogit(eta),
                           observed=r.binomial(trials, 0.4), dims=dims)
    if family == "Bernoulli":
        return pm.Bernoulli("y", logit_p=eta, observed=r.random(n) < 0.4, dims=dims)
    if family == "Beta":
        mu = pm.math.invlogit(eta)
        kappa = pm.Gamma("kappa", 2.0, 0.1)
        return pm.Beta("y", alpha=mu * kappa, beta=(1 - mu) * kappa,
                       observed=r.beta(2, 3, n), dims=dims)
    raise ValueError(family)


FAMILIES = ("Normal", "StudentT", "Laplace", "Logistic", "Gumbel", "SkewNormal", "Cauchy",
            "LogNormal", "Gamma", "Weibull", "Exponential", "InverseGamma", "Poisson",
            "NegativeBinomial", "ZeroInflatedPoisson", "Binomial", "Bernoulli", "Beta")


def choices(seed: int) -> dict:
    """What seed ``seed`` draws (the builder draws the rest, parameters and data)."""
    r = np.random.default_rng([seed, 0])
    family = str(r.choice(FAMILIES))
    return {
        "n": int(r.integers(8, 40)), "groups": int(r.integers(2, 7)),
        "predictors": int(r.integers(0, 4)), "family": family,
        "intercept": str(r.choice(sorted(LOCATIONS))),
        "varying": str(r.choice(["none", "centred", "non-centred", "zerosum"])),
        "group_scale": str(r.choice(sorted(SCALES))),
        "slopes": str(r.choice(["dense", "varying", "none"])),
        "data": str(r.choice(["array", "pm.Data"])),
        "censor": str(r.choice(["none", "none", "censored", "truncated"])),
        "deterministic": bool(r.random() < 0.5), "potential": bool(r.random() < 0.25),
        "dims": bool(r.random() < 0.5),
    }


def describe(seed: int) -> str:
    return ", ".join(f"{k}={v}" for k, v in choices(seed).items())


def build(seed: int) -> pm.Model:
    c = choices(seed)
    r = np.random.default_rng([seed, 1])
    n, g, k = c["n"], c["groups"], c["predictors"]
    group = r.integers(0, g, n)
    group[:g] = np.arange(g)  # every group observed
    X = r.normal(size=(n, k))
    coords = {"group": [f"g{i}" for i in range(g)], "obs": np.arange(n),
              "pred": [f"x{i}" for i in range(k)]}
    with pm.Model(coords=coords) as m:
        if c["data"] == "pm.Data":
            Xd = pm.Data("X", X, dims=("obs", "pred") if c["dims"] and k else None)
            gd = pm.Data("group_idx", group)
        else:
            Xd, gd = X, group
        gdims = "group" if c["dims"] else None
        intercept = LOCATIONS[c["intercept"]]("intercept", r)
        eta = intercept
        if c["varying"] != "none":
            tau = SCALES[c["group_scale"]]("tau", r)
            if c["varying"] == "centred":
                a = pm.Normal("a", 0.0, tau, dims=gdims, shape=None if gdims else g)
            elif c["varying"] == "non-centred":
                z = pm.Normal("z", 0.0, 1.0, dims=gdims, shape=None if gdims else g)
                a = z * tau
            else:
                a = pm.ZeroSumNormal("a", sigma=tau, dims=gdims, shape=None if gdims else g)
            eta = eta + a[gd]
        if k and c["slopes"] != "none":
            beta = pm.Normal("beta", 0.0, r.uniform(0.5, 2), dims="pred" if c["dims"] else None,
                             shape=None if c["dims"] else k)
            eta = eta + pt.dot(Xd, beta)
            if c["slopes"] == "varying":  # one predictor's slope varies by group
                b = pm.Normal("b", 0.0, 0.5, shape=g)
                eta = eta + b[gd] * Xd[:, 0]
        eta = eta + pt.zeros(n)  # a vector even without groups or predictors
        if c["deterministic"]:
            pm.Deterministic("eta", eta)
        _likelihood(c["family"], eta, n, r, c["censor"], "obs" if c["dims"] else None)
        if c["potential"]:
            pm.Potential("shrink", -0.5 * pt.sum(intercept ** 2) / 25.0)
    return m


N = int(os.environ.get("AOT_GENERATED_MODELS", "60"))
MODELS: dict[str, Callable[[], pm.Model]] = {f"gen{s:03d}": partial(build, s)
                                             for s in range(N)}
CHANGES: dict[str, Callable[[pm.Model], None]] = {}
#: the subset CI checks
CI = [f"gen{s:03d}" for s in range(6)]
