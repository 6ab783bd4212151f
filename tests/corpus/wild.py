"""A second registry of PyMC models: distributions, transforms and ops the main corpus
(``tests.corpus``) does not cover, written the way users write them (horseshoe priors,
ZeroSumNormal, HSGP and latent GPs, GARCH11, hurdles, censored and truncated families,
splines, Potentials with logsumexp, CustomDist, explicit MvNormal covariances, crossed
non-centred effects, large counts, ``pm.Data`` changed by ``set_data``; since session 15
AR, LKJCorr with MvStudentT, DirichletMultinomial, rarer continuous and discrete families,
discrete truncation, Matern and periodic latent GPs, MvGaussianRandomWalk, a CustomDist
written as a Scan, mixtures of MvNormals, precision matrices, KroneckerNormal, Wishart,
CAR and ICAR, stick-breaking weights, Euler-Maruyama, HSGPPeriodic, Interpolated; since
session 17 MatrixNormal, Triangular, ChiSquared, HyperGeometric, DiscreteUniform).

``MODELS`` maps a name to a builder (same contract as ``tests.corpus.MODELS``; names are
distinct from the corpus's). ``CHANGES`` maps a model to what a user does to it after
compiling (``pm.set_data`` with new values, a new length): the check evaluates the same
function again after it. ``CI`` names the representative subset ``tests/test_corpus.py``
checks; ``python -m tests.corpus.check --registry wild`` checks them all.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = ["CHANGES", "CI", "MODELS"]

MODELS: dict[str, Callable[[], pm.Model]] = {}
#: model -> a change made after compiling (``pm.set_data``), checked like the first values
CHANGES: dict[str, Callable[[pm.Model], None]] = {}


def model(fn: Callable[[np.random.Generator], pm.Model]) -> Callable:
    """Register a builder under its name; it gets its own Generator, seeded by the name."""
    name = fn.__name__
    MODELS[name] = lambda: fn(np.random.default_rng(zlib.crc32(name.encode())))
    return fn


# -- shrinkage and sum-to-zero effects -------------------------------------------------------

@model
def horseshoe_regression(rng):
    """Regularised (Finnish) horseshoe: HalfStudentT local and global scales, an
    InverseGamma slab, non-centred coefficients; 3 of 12 predictors matter."""
    n, k = 80, 12
    x = rng.normal(size=(n, k))
    beta = np.zeros(k)
    beta[:3] = [2.0, -1.5, 1.0]
    y = x @ beta + rng.normal(size=n)
    p0 = 3
    with pm.Model() as m:
        sigma = pm.HalfNormal("sigma", 2)
        tau = pm.HalfStudentT("tau", nu=2, sigma=p0 / (k - p0) * sigma / np.sqrt(n))
        lam = pm.HalfStudentT("lam", nu=5, shape=k)
        c2 = pm.InverseGamma("c2", 2, 8)
        lam_t = pm.Deterministic("lam_t", pt.sqrt(c2 * lam ** 2 / (c2 + tau ** 2 * lam ** 2)))
        z = pm.Normal("z", 0, 1, shape=k)
        b = pm.Deterministic("b", z * tau * lam_t)
        alpha = pm.Normal("alpha", 0, 5)
        pm.Normal("y", alpha + pm.math.dot(x, b), sigma, observed=y)
    return m


@model
def zerosum_crossed_effects(rng):
    """Two crossed groupings: ZeroSumNormal effects for one, non-centred normal effects for
    the other, and a ZeroSumNormal interaction over both axes (``n_zerosum_axes=2``)."""
    na, nb, n = 6, 5, 240
    ga, gb = rng.integers(0, na, n), rng.integers(0, nb, n)
    y = 1.0 + rng.normal(size=na)[ga] + 0.5 * rng.normal(size=nb)[gb] + rng.normal(size=n)
    with pm.Model(coords={"ga": range(na), "gb": range(nb)}) as m:
        mu = pm.Normal("mu", 0, 5)
        sa = pm.HalfNormal("sa", 2)
        a = pm.ZeroSumNormal("a", sigma=sa, dims="ga")
        sb = pm.HalfNormal("sb", 2)
        b_z = pm.Normal("b_z", 0, 1, dims="gb")
        b = pm.Deterministic("b", sb * b_z, dims="gb")
        sab = pm.HalfNormal("sab", 1)
        ab = pm.ZeroSumNormal("ab", sigma=sab, dims=("ga", "gb"), n_zerosum_axes=2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", mu + a[ga] + b[gb] + ab[ga, gb], sigma, observed=y)
    return m


# -- Gaussian processes -----------------------------------------------------------------------

@model
def hsgp_regression(rng):
    """Hilbert-space approximate GP (``pm.gp.HSGP``, Matern 5/2, 20 basis functions)."""
    n = 60
    x = np.sort(rng.uniform(0, 10, n))[:, None]
    y = np.sin(x[:, 0]) + 0.3 * rng.normal(size=n)
    with pm.Model() as m:
        ls = pm.InverseGamma("ls", 3, 6)
        eta = pm.HalfNormal("eta", 1)
        cov = eta ** 2 * pm.gp.cov.Matern52(1, ls=ls)
        gp = pm.gp.HSGP(m=[20], c=1.5, cov_func=cov)
        f = gp.prior("f", X=x)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", f, sigma, observed=y)
    return m


@model
def latent_gp_poisson(rng):
    """Latent GP (``pm.gp.Latent``: a Cholesky of the covariance plus jitter, whitened
    rotation) under a Poisson likelihood."""
    n = 25
    x = np.linspace(0, 5, n)[:, None]
    y = rng.poisson(np.exp(1 + np.sin(x[:, 0])))
    with pm.Model() as m:
        ls = pm.Gamma("ls", 3, 2)
        eta = pm.HalfNormal("eta", 1)
        cov = eta ** 2 * pm.gp.cov.ExpQuad(1, ls=ls) + pm.gp.cov.WhiteNoise(1e-6)
        gp = pm.gp.Latent(mean_func=pm.gp.mean.Constant(1.0), cov_func=cov)
        f = gp.prior("f", X=x)
        pm.Poisson("y", pt.exp(f), observed=y)
    return m


@model
def mvnormal_explicit_cov(rng):
    """MvNormal with a covariance built by hand from pm.math (exponential decay in distance
    plus a diagonal), several observed rows."""
    k, n = 6, 30
    t = np.arange(k, dtype=float)
    dist = np.abs(t[:, None] - t[None, :])
    y = rng.multivariate_normal(np.zeros(k), np.exp(-dist / 2) + 0.1 * np.eye(k), size=n)
    with pm.Model() as m:
        rho = pm.HalfNormal("rho", 3)
        s = pm.HalfNormal("s", 2)
        nug = pm.HalfNormal("nug", 1)
        cov = s ** 2 * pm.math.exp(-dist / rho) + nug ** 2 * pt.eye(k)
        mu = pm.Normal("mu", 0, 2, shape=k)
        pm.MvNormal("y", mu=mu, cov=cov, observed=y)
    return m


# -- time series --------------------------------------------------------------------------------

@model
def garch11(rng):
    """``pm.GARCH11`` (a Scan inside a SymbolicRandomVariable)."""
    t = 80
    r = 0.1 * rng.standard_t(6, t)
    with pm.Model() as m:
        omega = pm.HalfNormal("omega", 0.1)
        alpha = pm.Beta("alpha", 2, 8)
        beta = pm.Beta("beta", 8, 2)
        pm.GARCH11("r", omega=omega, alpha_1=alpha, beta_1=beta,
                   initial_vol=pt.as_tensor(0.1), observed=r)
    return m


@model
def grw_drift_ar_latent(rng):
    """A GaussianRandomWalk with drift (``mu``) and an ``init_dist``, plus a latent AR(1)
    without a constant, both under one Normal likelihood."""
    t = 60
    y = np.cumsum(0.1 + 0.3 * rng.normal(size=t)) + rng.normal(scale=0.4, size=t)
    with pm.Model() as m:
        drift = pm.Normal("drift", 0, 1)
        s = pm.HalfNormal("s", 1)
        trend = pm.GaussianRandomWalk("trend", mu=drift, sigma=s,
                                      init_dist=pm.Normal.dist(0, 2), steps=t - 1)
        rho = pm.Uniform("rho", -1, 1)
        s_ar = pm.HalfNormal("s_ar", 0.5)
        ar = pm.AR("ar", rho=[rho], sigma=s_ar, init_dist=pm.Normal.dist(0, 1), steps=t - 1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", trend + ar, sigma, observed=y)
    return m


@model
def changepoint_switch(rng):
    """Coal-mining style change point: a continuous switch point compared with the index,
    ``pm.math.switch`` between two rates."""
    t = np.arange(100)
    y = rng.poisson(np.where(t < 40, 3.0, 1.0))
    with pm.Model() as m:
        tau = pm.Uniform("tau", 0, 100)
        early = pm.Exponential("early", 1)
        late = pm.Exponential("late", 1)
        rate = pm.math.switch(tau >= t, early, late)
        pm.Poisson("y", rate, observed=y)
    return m


# -- discrete likelihoods -----------------------------------------------------------------------

@model
def beta_binomial_logit(rng):
    """BetaBinomial with a logit-linear mean and a learned concentration."""
    n = 60
    x = rng.normal(size=n)
    trials = rng.integers(5, 40, n)
    p = 1 / (1 + np.exp(-(0.3 + 0.8 * x)))
    y = rng.binomial(trials, rng.beta(p * 10, (1 - p) * 10))
    with pm.Model() as m:
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 1)
        kappa = pm.Gamma("kappa", 2, 0.2)
        mu = pm.math.invlogit(a + b * x)
        pm.BetaBinomial("y", alpha=mu * kappa, beta=(1 - mu) * kappa, n=trials, observed=y)
    return m


@model
def multinomial_softmax(rng):
    """Multinomial on softmax probabilities (a zero column concatenated to free logits) and
    a DirichletMultinomial."""
    n, k = 30, 4
    counts = rng.multinomial(50, [0.1, 0.2, 0.3, 0.4], size=n)
    dm = rng.multinomial(20, rng.dirichlet([2.0, 3.0, 5.0]))
    with pm.Model() as m:
        free = pm.Normal("free", 0, 2, shape=k - 1)
        logits = pt.concatenate([pt.zeros(1), free])
        pm.Multinomial("counts", n=50, p=pm.math.softmax(logits), observed=counts)
        conc = pm.Gamma("conc", 2, 0.5, shape=3)
        pm.DirichletMultinomial("dm", n=20, a=conc, observed=dm)
    return m


@model
def categorical_softmax_regression(rng):
    """Multinomial logistic regression: Categorical on logits, coefficients of the first
    class fixed at zero by stacking (``pt.stack`` / ``pt.concatenate``)."""
    n, d, k = 150, 2, 3
    x = rng.normal(size=(n, d))
    w = np.array([[0.0, 1.0, -1.0], [0.0, -0.5, 1.5]])
    logits = x @ w
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    with pm.Model() as m:
        b = pm.Normal("b", 0, 2, shape=(d, k - 1))
        a = pm.Normal("a", 0, 2, shape=k - 1)
        w_full = pt.concatenate([pt.zeros((d, 1)), b], axis=1)
        a_full = pt.stack([pt.constant(0.0), a[0], a[1]])
        pm.Categorical("y", logit_p=pm.math.dot(x, w_full) + a_full, observed=y)
    return m


@model
def ordered_probit(rng):
    n = 120
    x = rng.normal(size=n)
    latent = 0.8 * x + rng.normal(size=n)
    y = np.digitize(latent, [-1.0, 0.0, 1.0])
    with pm.Model() as m:
        b = pm.Normal("b", 0, 2)
        cut = pm.Normal("cut", 0, 3, shape=3, transform=pm.distributions.transforms.ordered,
                        initval=np.array([-1.0, 0.0, 1.0]))
        pm.OrderedProbit("y", eta=b * x, cutpoints=cut, sigma=1.0, observed=y)
    return m


@model
def poisson_large_counts(rng):
    """Counts in the thousands (gammaln of large arguments) and a Binomial with large n."""
    n = 50
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(7.0 + 0.2 * x))
    trials = rng.integers(5000, 20000, n)
    k = rng.binomial(trials, 0.37)
    with pm.Model() as m:
        a = pm.Normal("a", 5, 3)
        b = pm.Normal("b", 0, 1)
        pm.Poisson("y", pt.exp(a + b * x), observed=y)
        p = pm.Beta("p", 1, 1)
        pm.Binomial("k", n=trials, p=p, observed=k)
    return m


# -- continuous families ------------------------------------------------------------------------

@model
def positive_families(rng):
    """LogNormal, Wald, ExGaussian, Weibull and Gamma-hyperprior StudentT likelihoods side
    by side (one observed vector each)."""
    n = 50
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 1)
        s = pm.HalfNormal("s", 1)
        pm.LogNormal("ln", mu, s, observed=rng.lognormal(0.2, 0.5, n))
        wm = pm.Gamma("wm", 2, 1)
        lam = pm.Gamma("lam", 2, 0.5)
        pm.Wald("wald", mu=wm, lam=lam, observed=rng.wald(1.0, 3.0, n))
        em = pm.Normal("em", 0, 2)
        es = pm.HalfNormal("es", 1)
        nu = pm.Gamma("nu", 2, 1)
        pm.ExGaussian("exg", mu=em, sigma=es, nu=nu,
                      observed=rng.normal(0, 0.5, n) + rng.exponential(1.0, n))
        wa = pm.Gamma("wa", 2, 1)
        wb = pm.Gamma("wb", 2, 1)
        pm.Weibull("weib", alpha=wa, beta=wb, observed=rng.weibull(1.5, n) * 2)
        tnu = pm.Gamma("tnu", 2, 0.1)
        pm.StudentT("t", nu=tnu, mu=mu, sigma=s, observed=rng.standard_t(4, n))
    return m


@model
def bounded_circular_skewed(rng):
    """Kumaraswamy on (0, 1) data, VonMises on angles, SkewNormal with a learned shape."""
    n = 60
    u = rng.uniform(size=n)
    kum = (1 - (1 - u) ** (1 / 3.0)) ** (1 / 2.0)
    with pm.Model() as m:
        ka = pm.Gamma("ka", 2, 1)
        kb = pm.Gamma("kb", 2, 1)
        pm.Kumaraswamy("kum", a=ka, b=kb, observed=kum)
        loc = pm.VonMises("loc", mu=0.0, kappa=0.5)
        kappa = pm.Gamma("kappa", 2, 0.5)
        pm.VonMises("ang", mu=loc, kappa=kappa, observed=rng.vonmises(0.7, 2.0, n))
        sm = pm.Normal("sm", 0, 2)
        ss = pm.HalfNormal("ss", 2)
        alpha = pm.Normal("alpha", 0, 3)
        pm.SkewNormal("skew", mu=sm, sigma=ss, alpha=alpha,
                      observed=np.abs(rng.normal(size=n)) + 0.2 * rng.normal(size=n))
    return m


@model
def hurdle_gamma_lognormal(rng):
    """HurdleGamma and HurdleLogNormal on data with exact zeros."""
    n = 80
    g = np.where(rng.random(n) < 0.3, 0.0, rng.gamma(2.0, 1.5, n))
    ln = np.where(rng.random(n) < 0.4, 0.0, rng.lognormal(0.5, 0.7, n))
    with pm.Model() as m:
        psi = pm.Beta("psi", 2, 2)
        ga = pm.Gamma("ga", 2, 1)
        gb = pm.Gamma("gb", 2, 1)
        pm.HurdleGamma("g", psi=psi, alpha=ga, beta=gb, observed=g)
        psi2 = pm.Beta("psi2", 2, 2)
        mu = pm.Normal("mu", 0, 2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.HurdleLogNormal("ln", psi=psi2, mu=mu, sigma=sigma, observed=ln)
    return m


@model
def censored_gamma_truncated_t(rng):
    """A right-censored Gamma and a StudentT truncated to (-2, 4) with learned nu."""
    n = 80
    g = np.minimum(rng.gamma(3.0, 1.0, n), 5.0)
    t = 1.0 + rng.standard_t(5, 300)
    t = t[(t > -2) & (t < 4)][:n]
    with pm.Model() as m:
        a = pm.Gamma("a", 2, 0.5)
        b = pm.Gamma("b", 2, 1)
        pm.Censored("g", pm.Gamma.dist(alpha=a, beta=b), lower=None, upper=5.0, observed=g)
        mu = pm.Normal("mu", 0, 2)
        s = pm.HalfNormal("s", 2)
        nu = pm.Gamma("nu", 2, 0.2)
        pm.Truncated("t", pm.StudentT.dist(nu=nu, mu=mu, sigma=s), lower=-2.0, upper=4.0,
                     observed=t)
    return m


# -- designs, potentials, deterministics, custom densities --------------------------------------

def _bspline_basis(x: np.ndarray, knots: np.ndarray, degree: int = 3) -> np.ndarray:
    """Cox-de Boor B-spline basis on ``x`` (rows) for the given interior knots."""
    t = np.concatenate([[knots[0]] * degree, knots, [knots[-1]] * degree])
    basis = ((t[:-1] <= x[:, None]) & (x[:, None] < t[1:])).astype(float)
    basis[x == knots[-1], len(knots) + degree - 2] = 1.0
    for d in range(1, degree + 1):
        left = (x[:, None] - t[:-d - 1]) / np.where(t[d:-1] > t[:-d - 1],
                                                     t[d:-1] - t[:-d - 1], 1.0)
        right = (t[d + 1:] - x[:, None]) / np.where(t[d + 1:] > t[1:-d], t[d + 1:] - t[1:-d],
                                                    1.0)
        basis = left * basis[:, :-1] + right * basis[:, 1:]
    return basis


@model
def spline_regression(rng):
    """A cubic B-spline basis (a constant design matrix) times coefficients with a random-walk
    prior (``pt.cumsum``)."""
    n = 100
    x = np.sort(rng.uniform(0, 10, n))
    y = np.sin(x) + 0.1 * x + 0.3 * rng.normal(size=n)
    basis = _bspline_basis(x, np.linspace(0, 10, 8))
    with pm.Model() as m:
        tau = pm.HalfNormal("tau", 1)
        steps = pm.Normal("steps", 0, 1, shape=basis.shape[1])
        w = pm.Deterministic("w", pt.cumsum(tau * steps))
        a = pm.Normal("a", 0, 2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", a + pm.math.dot(basis, w), sigma, observed=y)
    return m


@model
def potential_logsumexp_mixture(rng):
    """A two-component mixture written by hand: ``pm.math.logsumexp`` over stacked
    component log-densities in a ``pm.Potential``; an interval probability by
    ``pm.math.logdiffexp`` of log CDFs in a second Potential."""
    n = 100
    y = np.where(rng.random(n) < 0.4, rng.normal(-2, 0.7, n), rng.normal(2, 1.0, n))
    with pm.Model() as m:
        w = pm.Beta("w", 2, 2)
        mu = pm.Normal("mu", [-1.0, 1.0], 3, shape=2,
                       transform=pm.distributions.transforms.ordered)
        sd = pm.HalfNormal("sd", 2, shape=2)
        comp = pt.stack([pt.log(w) + pm.logp(pm.Normal.dist(mu[0], sd[0]), y),
                         pt.log1p(-w) + pm.logp(pm.Normal.dist(mu[1], sd[1]), y)])
        pm.Potential("mix", pm.math.logsumexp(comp, axis=0).sum())
        # 12 of the points lay in (-0.5, 0.5): their interval probability under comp 2
        dist = pm.Normal.dist(mu[1], sd[1])
        pm.Potential("interval", 12 * pm.math.logdiffexp(pm.logcdf(dist, 0.5),
                                                         pm.logcdf(dist, -0.5)))
    return m


@model
def deterministics_and_indexing(rng):
    """Deterministics users add (sort, cumsum, max, repeated-index gathers), advanced
    indexing with repeated indices in the likelihood, and ``pm.Data`` changed afterwards
    by ``pm.set_data`` (values and length: ``CHANGES``)."""
    n, g = 40, 5
    idx = np.concatenate([rng.integers(0, g, n - 5), [0, 0, 0, 4, 4]])
    x = rng.normal(size=n)
    y = rng.normal(size=g)[idx] + 0.5 * x + 0.3 * rng.normal(size=n)
    with pm.Model() as m:
        xd = pm.Data("x", x)
        gd = pm.Data("g", idx)
        yd = pm.Data("y_obs", y)
        eff = pm.Normal("eff", 0, 1, shape=g)
        b = pm.Normal("b", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Deterministic("sorted_eff", pt.sort(eff))
        pm.Deterministic("cum_eff", pt.cumsum(eff))
        pm.Deterministic("max_eff", pt.max(eff))
        pm.Deterministic("pairs", eff[np.array([0, 0, 1, 4, 4, 4])] * b)
        pm.Normal("y", eff[gd] + b * xd, sigma, observed=yd, shape=xd.shape)
    return m


def _change_data(m: pm.Model) -> None:
    rng = np.random.default_rng(5)
    n = 30
    with m:
        pm.set_data({"x": rng.normal(size=n), "g": rng.integers(0, 5, n),
                     "y_obs": rng.normal(size=n)})


CHANGES["deterministics_and_indexing"] = _change_data


def _gumbel_logp(value, mu, beta):
    z = (value - mu) / beta
    return -z - pt.exp(-z) - pt.log(beta)


@model
def customdist_logp(rng):
    """``pm.CustomDist`` with only a logp function (a Gumbel density written by hand)."""
    y = rng.gumbel(1.0, 2.0, 80)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 5)
        beta = pm.HalfNormal("beta", 3)
        pm.CustomDist("y", mu, beta, logp=_gumbel_logp, observed=y)
    return m


@model
def crossed_noncentered(rng):
    """Non-centred varying intercepts over two crossed groupings (subjects x items) with a
    varying slope per subject, observed on a long table."""
    ns, ni, n = 12, 8, 300
    s, i = rng.integers(0, ns, n), rng.integers(0, ni, n)
    x = rng.normal(size=n)
    y = (0.5 + rng.normal(size=ns)[s] + 0.5 * rng.normal(size=ni)[i]
         + (0.3 + 0.2 * rng.normal(size=ns)[s]) * x + 0.5 * rng.normal(size=n))
    with pm.Model(coords={"subj": range(ns), "item": range(ni)}) as m:
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 1)
        s_subj = pm.HalfNormal("s_subj", 1)
        s_item = pm.HalfNormal("s_item", 1)
        s_slope = pm.HalfNormal("s_slope", 0.5)
        z_subj = pm.Normal("z_subj", 0, 1, dims="subj")
        z_item = pm.Normal("z_item", 0, 1, dims="item")
        z_slope = pm.Normal("z_slope", 0, 1, dims="subj")
        mu = (a + s_subj * z_subj[s] + s_item * z_item[i]
              + (b + s_slope * z_slope[s]) * x)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", mu, sigma, observed=y)
    return m


# -- session 15: more families and time series ------------------------------------------------

@model
def ar_with_constant(rng):
    """``pm.AR`` of order 2 with a constant term and a Normal initial distribution."""
    n = 120
    y = np.zeros(n)
    for t in range(2, n):
        y[t] = 0.3 + 0.5 * y[t - 1] - 0.2 * y[t - 2] + rng.normal(0, 0.5)
    with pm.Model() as m:
        rho = pm.Normal("rho", 0, 0.5, shape=3)
        sigma = pm.HalfNormal("sigma", 1)
        pm.AR("y", rho=rho, sigma=sigma, constant=True,
              init_dist=pm.Normal.dist(0, 2, shape=2), observed=y)
    return m


@model
def mv_student_t_lkj_corr(rng):
    """``pm.LKJCorr`` scaled by standard deviations into a covariance for ``pm.MvStudentT``."""
    k, n = 3, 60
    y = rng.standard_t(5, size=(n, k)) * np.array([1.0, 2.0, 0.5])
    with pm.Model() as m:
        corr = pm.LKJCorr("corr", n=k, eta=2.0, return_matrix=True)
        sd = pm.HalfNormal("sd", 2, shape=k)
        cov = corr * pt.outer(sd, sd)
        nu = pm.Gamma("nu", 2, 0.1)
        pm.MvStudentT("y", nu=nu, mu=np.zeros(k), scale=cov, observed=y)
    return m


@model
def dirichlet_multinomial_counts(rng):
    """``pm.DirichletMultinomial`` of count vectors with a concentration on a log scale."""
    k, n = 4, 30
    p = rng.dirichlet(np.ones(k) * 3, size=n)
    counts = np.array([rng.multinomial(20, pi) for pi in p])
    with pm.Model() as m:
        log_a = pm.Normal("log_a", 0, 1, shape=k)
        pm.DirichletMultinomial("y", n=20, a=pt.exp(log_a), observed=counts)
    return m


@model
def exotic_families(rng):
    """Less common continuous families in one model: SkewNormal, ExGaussian,
    AsymmetricLaplace, Kumaraswamy, LogitNormal, Wald, Moyal, Rice."""
    with pm.Model() as m:
        a = pm.Normal("a", 0, 1)
        s = pm.HalfNormal("s", 1)
        pm.SkewNormal("y1", mu=a, sigma=s, alpha=2.0, observed=rng.normal(0.5, 1, 40))
        pm.ExGaussian("y2", mu=a, sigma=s, nu=1.5, observed=rng.normal(1.5, 1, 40))
        pm.AsymmetricLaplace("y3", kappa=1.5, mu=a, b=s, observed=rng.laplace(0, 1, 40))
        ka = pm.Gamma("ka", 2, 1)
        pm.Kumaraswamy("y4", a=ka, b=2.0, observed=rng.beta(2, 3, 40))
        pm.LogitNormal("y5", mu=a, sigma=s, observed=rng.uniform(0.05, 0.95, 40))
        pm.Wald("y6", mu=pt.exp(a) + 0.5, lam=2.0, observed=rng.wald(1.0, 2.0, 40))
        pm.Moyal("y7", mu=a, sigma=s, observed=rng.gumbel(0, 1, 40))
        pm.Rice("y8", nu=pt.abs(a) + 0.1, sigma=s, observed=rng.rayleigh(1.0, 40))
    return m


@model
def truncated_poisson_hurdle(rng):
    """A discrete ``pm.Truncated`` (Poisson above 0 and below 30, logcdf differences) and
    ``pm.HurdlePoisson`` on the same covariate."""
    n = 80
    x = rng.normal(size=n)
    y = np.clip(rng.poisson(np.exp(1 + 0.4 * x)), 1, 29)
    z = np.where(rng.random(n) < 0.3, 0, rng.poisson(3, n) + 1)
    with pm.Model() as m:
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 1)
        pm.Truncated("y", pm.Poisson.dist(pt.exp(a + b * x)), lower=1, upper=30,
                     observed=y)
        psi = pm.Beta("psi", 2, 2)
        mu = pm.Gamma("mu", 2, 0.5)
        pm.HurdlePoisson("z", psi=psi, mu=mu, observed=z)
    return m


@model
def latent_gp_matern_periodic(rng):
    """``pm.gp.Latent`` with a Matern52 plus Periodic covariance and a Bernoulli logit
    likelihood."""
    n = 30
    x = np.linspace(0, 6, n)[:, None]
    y = (rng.random(n) < 1 / (1 + np.exp(-np.sin(2 * x[:, 0])))).astype(int)
    with pm.Model() as m:
        ls = pm.Gamma("ls", 3, 2)
        eta = pm.HalfNormal("eta", 1)
        cov = (eta ** 2 * pm.gp.cov.Matern52(1, ls=ls)
               + 0.5 * pm.gp.cov.Periodic(1, period=3.0, ls=1.0))
        gp = pm.gp.Latent(cov_func=cov)
        f = gp.prior("f", X=x, jitter=1e-5)
        pm.Bernoulli("y", logit_p=f, observed=y)
    return m


@model
def mv_gaussian_random_walk(rng):
    """``pm.MvGaussianRandomWalk`` of a 2-d latent path with an LKJ Cholesky factor,
    observed with Normal noise."""
    t, k = 40, 2
    path = np.cumsum(rng.normal(size=(t, k)) * 0.3, axis=0)
    with pm.Model() as m:
        chol, _, _ = pm.LKJCholeskyCov("chol", n=k, eta=2.0,
                                       sd_dist=pm.HalfNormal.dist(1.0, shape=k))
        w = pm.MvGaussianRandomWalk("w", mu=np.zeros(k), chol=chol,
                                    init_dist=pm.MvNormal.dist(np.zeros(k), np.eye(k)),
                                    shape=(t, k))
        s = pm.HalfNormal("s", 1)
        pm.Normal("y", w, s, observed=path + 0.2 * rng.normal(size=(t, k)))
    return m


def _scan_walk(mu, sigma, size):
    import pytensor
    from pymc.pytensorf import collect_default_updates

    def step(prev, mu, sigma):
        nxt = prev + pm.Normal.dist(mu, sigma)
        return nxt, collect_default_updates([nxt])

    walk, _ = pytensor.scan(step, outputs_info=[pt.zeros(())], non_sequences=[mu, sigma],
                            n_steps=25, strict=True)
    return walk


@model
def scan_customdist(rng):
    """``pm.CustomDist`` whose ``dist`` is a ``pytensor.scan`` random walk: PyMC derives the
    logp of the Scan itself."""
    y = np.cumsum(rng.normal(0.2, 0.7, 25))
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.CustomDist("y", mu, sigma, dist=_scan_walk, observed=y)
    return m


@model
def discrete_families(rng):
    """Geometric, DiscreteWeibull, ZeroInflatedBinomial and BetaBinomial counts sharing
    parameters."""
    with pm.Model() as m:
        p = pm.Beta("p", 2, 2)
        q = pm.Beta("q", 5, 2)
        pm.Geometric("g", p=p, observed=rng.geometric(0.4, 40))
        pm.DiscreteWeibull("w", q=q, beta=1.5, observed=rng.geometric(0.3, 40) - 1)
        pm.ZeroInflatedBinomial("z", psi=0.7, n=10, p=p,
                                observed=np.where(rng.random(40) < 0.3, 0,
                                                  rng.binomial(10, 0.4, 40)))
        ab = pm.Gamma("ab", 2, 0.5, shape=2)
        pm.BetaBinomial("bb", alpha=ab[0], beta=ab[1], n=12, observed=rng.binomial(12, 0.3, 40))
    return m


# -- session 15, second round: multivariate, spatial, nonparametric, SDEs ----------------------

@model
def mixture_of_mvnormals(rng):
    """A two-component ``pm.Mixture`` of MvNormals sharing an LKJ Cholesky factor."""
    k, d, n = 2, 2, 80
    y = np.concatenate([rng.multivariate_normal([-2, 0], np.eye(2), n // 2),
                        rng.multivariate_normal([2, 1], [[1, .5], [.5, 1]], n // 2)])
    with pm.Model() as m:
        w = pm.Dirichlet("w", np.ones(k))
        mus = pm.Normal("mus", 0, 3, shape=(k, d))
        chol, _, _ = pm.LKJCholeskyCov("chol", n=d, eta=2.0,
                                       sd_dist=pm.HalfNormal.dist(1.0, shape=d))
        comps = [pm.MvNormal.dist(mu=mus[i], chol=chol) for i in range(k)]
        pm.Mixture("y", w=w, comp_dists=comps, observed=y)
    return m


@model
def mvnormal_precision(rng):
    """``pm.MvNormal`` given a precision matrix (``tau``) instead of a covariance."""
    d = 3
    y = rng.multivariate_normal(np.zeros(d), np.eye(d), 50)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 1, shape=d)
        s = pm.HalfNormal("s", 1, shape=d)
        tau = pt.diag(1 / s ** 2) + 0.1
        pm.MvNormal("y", mu=mu, tau=tau, observed=y)
    return m


@model
def kronecker_normal(rng):
    """``pm.KroneckerNormal`` over two ExpQuad covariances (its logp takes ``eigh`` of
    each factor: still on ``perform``)."""
    x1, x2 = np.linspace(0, 1, 5)[:, None], np.linspace(0, 1, 4)[:, None]
    y = rng.normal(size=20)
    with pm.Model() as m:
        ls = pm.Gamma("ls", 2, 2)
        K1 = pm.gp.cov.ExpQuad(1, ls=ls)(x1) + 1e-3 * np.eye(5)
        K2 = pm.gp.cov.ExpQuad(1, ls=0.5)(x2) + 1e-3 * np.eye(4)
        sigma = pm.HalfNormal("sigma", 1)
        pm.KroneckerNormal("y", mu=np.zeros(20), covs=[K1, K2], sigma=sigma, observed=y)
    return m


@model
def wishart_observed(rng):
    """An observed ``pm.Wishart`` scatter matrix with a diagonal scale (``PosDefMatrix``,
    the gradient of ``prod``: ``ProdWithoutZeros``)."""
    d = 3
    S = np.cov(rng.normal(size=(d, 30))) * 30
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1, shape=d)
        V = pt.diag(s ** 2)
        pm.Wishart("W", nu=30, V=V, observed=S)
    return m


def _chain_adjacency(n: int) -> np.ndarray:
    """The adjacency matrix of a path of ``n`` areas."""
    W = np.zeros((n, n))
    for i in range(n - 1):
        W[i, i + 1] = W[i + 1, i] = 1
    return W


@model
def car_icar_spatial(rng):
    """``pm.CAR`` and ``pm.ICAR`` spatial effects on a chain of areas, each under a Poisson
    likelihood."""
    n = 6
    W = _chain_adjacency(n)
    with pm.Model() as m:
        tau = pm.Gamma("tau", 2, 1)
        alpha = pm.Beta("alpha", 2, 2)
        car = pm.CAR("car", mu=np.zeros(n), W=W, alpha=alpha, tau=tau)
        sigma = pm.HalfNormal("sigma", 1)
        icar = pm.ICAR("icar", W=W, sigma=sigma)
        b = pm.Normal("b", 1, 1)
        pm.Poisson("y", pt.exp(b + car), observed=rng.poisson(3, n))
        pm.Poisson("z", pt.exp(b + icar), observed=rng.poisson(3, n))
    return m


@model
def stick_breaking_mixture(rng):
    """A truncated Dirichlet-process mixture: ``pm.StickBreakingWeights`` into a
    ``pm.NormalMixture``."""
    K = 5
    y = np.concatenate([rng.normal(-2, 0.5, 30), rng.normal(2, 0.5, 30)])
    with pm.Model() as m:
        alpha = pm.Gamma("alpha", 1, 1)
        w = pm.StickBreakingWeights("w", alpha=alpha, K=K - 1)
        mu = pm.Normal("mu", 0, 3, shape=K)
        sd = pm.HalfNormal("sd", 1, shape=K)
        pm.NormalMixture("y", w=w, mu=mu, sigma=sd, observed=y)
    return m


@model
def euler_maruyama_sde(rng):
    """``pm.EulerMaruyama``: an Ornstein-Uhlenbeck path observed with noise."""
    def sde(x, theta):
        return -theta * x, 0.3
    y = np.cumsum(rng.normal(0, 0.1, 30))
    with pm.Model() as m:
        theta = pm.HalfNormal("theta", 1)
        x = pm.EulerMaruyama("x", dt=0.1, sde_fn=sde, sde_pars=(theta,),
                             init_dist=pm.Normal.dist(0, 1), shape=30)
        pm.Normal("y", x, 0.1, observed=y)
    return m


@model
def skew_student_t_models(rng):
    """SkewStudentT, StudentT with an unknown ``nu``, Logistic, Laplace, Cauchy and
    Gumbel sharing a location and a scale."""
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 1)
        s = pm.HalfNormal("s", 1)
        pm.SkewStudentT("y", a=2.0, b=3.0, mu=mu, sigma=s, observed=rng.standard_t(4, 50))
        nu = pm.Gamma("nu", 2, 0.2)
        pm.StudentT("z", nu=nu, mu=mu, sigma=s, observed=rng.standard_t(4, 50))
        pm.Logistic("l", mu=mu, s=s, observed=rng.logistic(0, 1, 50))
        pm.Laplace("la", mu=mu, b=s, observed=rng.laplace(0, 1, 50))
        pm.Cauchy("c", alpha=mu, beta=s, observed=rng.standard_cauchy(50))
        pm.Gumbel("g", mu=mu, beta=s, observed=rng.gumbel(0, 1, 50))
    return m


@model
def hsgp_periodic(rng):
    """``pm.gp.HSGPPeriodic``: a periodic latent function by its low-rank approximation."""
    x = np.linspace(0, 10, 60)
    y = np.sin(x) + 0.2 * rng.normal(size=60)
    with pm.Model() as m:
        ls = pm.Gamma("ls", 3, 2)
        cov = pm.gp.cov.Periodic(1, period=2 * np.pi, ls=ls)
        gp = pm.gp.HSGPPeriodic(m=12, scale=1.0, cov_func=cov)
        f = gp.prior("f", X=x[:, None])
        s = pm.HalfNormal("s", 1)
        pm.Normal("y", f, s, observed=y)
    return m


@model
def interpolated_prior(rng):
    """A ``pm.Interpolated`` prior: its spline (SciPy's, a Python Op) stays on
    ``perform``, and nutpie falls back to Python callbacks."""
    xs = np.linspace(-3, 3, 50)
    pdf = np.exp(-xs ** 2 / 2)
    with pm.Model() as m:
        a = pm.Interpolated("a", x_points=xs, pdf_points=pdf)
        pm.Normal("y", a, 1, observed=rng.normal(0.5, 1, 20))
    return m


@model
def matrix_normal_regression(rng):
    """``pm.MatrixNormal`` with a fixed row covariance and an LKJ Cholesky factor for the
    columns, as a multi-output regression's noise (session 17)."""
    n, k = 12, 3
    x = rng.normal(size=(n, 2))
    y = x @ rng.normal(size=(2, k)) + rng.normal(size=(n, k))
    with pm.Model() as m:
        b = pm.Normal("b", 0, 1, shape=(2, k))
        chol, _, _ = pm.LKJCholeskyCov("chol", n=k, eta=2.0, sd_dist=pm.Exponential.dist(1.0),
                                       compute_corr=True)
        pm.MatrixNormal("y", mu=pt.dot(x, b), rowcov=np.eye(n), colchol=chol, observed=y)
    return m


@model
def bounded_and_discrete_families(rng):
    """Families no other model uses: Triangular and ChiSquared priors, an observed
    HyperGeometric, DiscreteUniform and Bernoulli-logit, a Beta with mean/sd
    parametrisation, ``pm.math`` helpers (``invlogit``, ``logsumexp``, ``logdiffexp``)
    (session 17)."""
    with pm.Model() as m:
        c = pm.Triangular("c", lower=0.0, c=1.0, upper=3.0)
        q = pm.ChiSquared("q", nu=4)
        mu = pm.Beta("mu", mu=0.3, sigma=0.1)
        pm.HyperGeometric("h", N=40, k=12, n=10, observed=rng.integers(0, 8, 15))
        pm.DiscreteUniform("d", lower=0, upper=9, observed=rng.integers(0, 10, 15))
        x = rng.normal(size=30)
        pm.Bernoulli("y", logit_p=c - 1.5 + mu * x, observed=rng.integers(0, 2, 30))
        pm.Potential("mix", pm.math.logsumexp(pt.stack([pt.log(q), pm.math.invlogit(c)])))
        pm.Potential("gap", pm.math.logdiffexp(pt.log(q + 2.0), pt.log(q + 1.0)))
    return m


@model
def beta_binomial_ranef_with_cumsum(rng):
    """A random walk built by hand with ``cumsum`` of non-centred steps, feeding a
    BetaBinomial through an ``invlogit`` mean and a concentration (session 17)."""
    t = 25
    n = rng.integers(20, 40, t)
    with pm.Model() as m:
        s = pm.HalfNormal("s", 0.3)
        z = pm.Normal("z", 0, 1, shape=t)
        walk = pm.Deterministic("walk", pt.cumsum(z * s))
        kappa = pm.Gamma("kappa", 4, 0.2)
        p = pm.math.invlogit(walk - 0.5)
        pm.BetaBinomial("y", alpha=p * kappa, beta=(1 - p) * kappa, n=n,
                        observed=rng.binomial(n, 0.4))
    return m


#: the representative subset ``tests/test_corpus.py`` checks in CI (cheap to compile, and
#: each guards a fix or a path the corpus lacks); the others:
#: ``python -m tests.corpus.check --registry wild``
CI = ["zerosum_crossed_effects", "deterministics_and_indexing", "garch11", "customdist_logp",
      "categorical_softmax_regression", "mvnormal_explicit_cov", "changepoint_switch",
      "hsgp_regression", "mv_student_t_lkj_corr", "exotic_families", "scan_customdist",
      "wishart_observed", "matrix_normal_regression"]
