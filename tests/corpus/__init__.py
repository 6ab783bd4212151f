"""A corpus of PyMC models: what users write, compiled the way PyMC's samplers compile it.

``MODELS`` maps a name to a builder returning a fresh ``pm.Model`` (small deterministic data,
one seeded NumPy Generator per model). ``logp_dlogp(model, mode)`` compiles the model's logp
and gradient exactly as ``pm.sample`` does for NUTS (``Model.logp_dlogp_function`` with
raveled inputs: one float64 vector in, ``[logp, dlogp]`` out; nutpie's ``compile_pymc_model``
builds the same function of one joined vector with ``pymc.pytensorf.compile``). ``points``
gives the evaluation points: the transformed initial point and jittered ones; ``reference``
runs a compiled function's own graph on PyTensor's Python linker.

Needs PyMC (``build/pymc-venv``); ``tests/corpus/check.py`` checks every model in mode AOT
against PyTensor's Python implementation, ``benchmarks/bench_corpus.py`` times them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

__all__ = ["MODELS", "logp_dlogp", "points", "reference"]

MODELS: dict[str, Callable[[], pm.Model]] = {}


def model(fn: Callable[[np.random.Generator], pm.Model]) -> Callable:
    """Register a builder under its name; it gets its own Generator, seeded by the name."""
    name = fn.__name__
    MODELS[name] = lambda: fn(np.random.default_rng(zlib.crc32(name.encode())))
    return fn


# -- hierarchical normal -------------------------------------------------------------------

SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


@model
def eight_schools_centered(rng):
    with pm.Model(coords={"school": range(8)}) as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta = pm.Normal("theta", mu, tau, dims="school")
        pm.Normal("y", theta, SCHOOLS_SIGMA, observed=SCHOOLS_Y, dims="school")
    return m


@model
def eight_schools_noncentered(rng):
    with pm.Model(coords={"school": range(8)}) as m:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        z = pm.Normal("z", 0, 1, dims="school")
        theta = pm.Deterministic("theta", mu + tau * z, dims="school")
        pm.Normal("y", theta, SCHOOLS_SIGMA, observed=SCHOOLS_Y, dims="school")
    return m


@model
def radon_varying_slopes(rng):
    """Varying intercepts (centred) and slopes (non-centred) indexed by group: a[county]."""
    n_county, n = 20, 200
    county = rng.integers(0, n_county, n)
    floor = rng.integers(0, 2, n).astype(float)
    y = 1.5 + 0.3 * rng.normal(size=n_county)[county] - 0.6 * floor + 0.7 * rng.normal(size=n)
    with pm.Model(coords={"county": range(n_county)}) as m:
        mu_a = pm.Normal("mu_a", 0, 10)
        sigma_a = pm.HalfNormal("sigma_a", 5)
        a = pm.Normal("a", mu_a, sigma_a, dims="county")
        mu_b = pm.Normal("mu_b", 0, 10)
        sigma_b = pm.HalfNormal("sigma_b", 5)
        b_z = pm.Normal("b_z", 0, 1, dims="county")
        b = mu_b + sigma_b * b_z
        sigma = pm.Exponential("sigma", 1)
        pm.Normal("y", a[county] + b[county] * floor, sigma, observed=y)
    return m


@model
def binomial_hierarchical(rng):
    """Rat tumours: Beta-distributed rates per group (logit, log and interval transforms)."""
    j = 30
    trials = rng.integers(10, 50, j)
    successes = rng.binomial(trials, rng.beta(2.0, 12.0, j))
    with pm.Model() as m:
        phi = pm.Uniform("phi", 0, 1)
        kappa = pm.Pareto("kappa", alpha=1.5, m=1)
        theta = pm.Beta("theta", alpha=phi * kappa, beta=(1 - phi) * kappa, shape=j)
        pm.Binomial("y", n=trials, p=theta, observed=successes)
    return m


# -- GLMs ----------------------------------------------------------------------------------

def _design(rng, n, k):
    x = rng.normal(size=(n, k))
    return x, rng.normal(scale=0.5, size=k)


@model
def logistic_regression(rng):
    x, beta = _design(rng, 150, 4)
    y = rng.random(150) < 1 / (1 + np.exp(-(x @ beta - 0.3)))
    with pm.Model() as m:
        alpha = pm.Normal("alpha", 0, 2.5)
        b = pm.Normal("beta", 0, 2.5, shape=4)
        pm.Bernoulli("y", logit_p=alpha + pt.dot(x, b), observed=y.astype("int64"))
    return m


@model
def poisson_regression(rng):
    x, beta = _design(rng, 120, 3)
    exposure = rng.uniform(0.5, 2.0, 120)
    y = rng.poisson(exposure * np.exp(0.5 + x @ beta))
    with pm.Model() as m:
        alpha = pm.Normal("alpha", 0, 2)
        b = pm.Normal("beta", 0, 1, shape=3)
        pm.Poisson("y", mu=pt.exp(alpha + pt.dot(x, b) + np.log(exposure)), observed=y)
    return m


@model
def negbin_regression(rng):
    x, beta = _design(rng, 120, 3)
    mu = np.exp(1.0 + x @ beta)
    y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
    with pm.Model() as m:
        alpha = pm.Normal("alpha", 0, 2)
        b = pm.Normal("beta", 0, 1, shape=3)
        shape = pm.Gamma("shape", 2, 0.5)
        pm.NegativeBinomial("y", mu=pt.exp(alpha + pt.dot(x, b)), alpha=shape, observed=y)
    return m


@model
def gamma_regression(rng):
    x, beta = _design(rng, 100, 2)
    mu = np.exp(0.5 + x @ beta)
    y = rng.gamma(4.0, mu / 4.0)
    with pm.Model() as m:
        alpha = pm.Normal("alpha", 0, 2)
        b = pm.Normal("beta", 0, 1, shape=2)
        shape = pm.HalfNormal("shape", 5)
        mu_ = pt.exp(alpha + pt.dot(x, b))
        pm.Gamma("y", alpha=shape, beta=shape / mu_, observed=y)
    return m


@model
def robust_regression(rng):
    """Student-t likelihood with unknown degrees of freedom, a few outliers."""
    n = 100
    x = rng.uniform(-2, 2, n)
    y = 1.0 + 2.0 * x + rng.standard_t(3, n)
    y[:5] += 15
    with pm.Model() as m:
        intercept = pm.Normal("intercept", 0, 10)
        slope = pm.Normal("slope", 0, 10)
        sigma = pm.HalfNormal("sigma", 5)
        nu = pm.Gamma("nu", 2, 0.1)
        pm.StudentT("y", nu=nu, mu=intercept + slope * x, sigma=sigma, observed=y)
    return m


@model
def linear_deterministics(rng):
    """pm.Data inputs and pm.Deterministic quantities around a linear regression."""
    n = 80
    x = rng.normal(size=n)
    y = 0.5 - 1.2 * x + 0.4 * rng.normal(size=n)
    with pm.Model(coords={"obs": range(n)}) as m:
        x_data = pm.Data("x", x, dims="obs")
        a = pm.Normal("a", 0, 5)
        b = pm.Normal("b", 0, 5)
        sigma = pm.HalfNormal("sigma", 2)
        mu = pm.Deterministic("mu", a + b * x_data, dims="obs")
        pm.Deterministic("variance", sigma ** 2)
        pm.Deterministic("odds_ratio", pt.exp(b))
        pm.Normal("y", mu, sigma, observed=y, dims="obs")
    return m


# -- mixtures ------------------------------------------------------------------------------

@model
def normal_mixture(rng):
    """NormalMixture with Dirichlet weights (simplex) and ordered means."""
    comp = rng.integers(0, 3, 150)
    y = np.array([-2.0, 0.5, 3.0])[comp] + rng.normal(scale=0.6, size=150)
    with pm.Model() as m:
        w = pm.Dirichlet("w", a=np.ones(3))
        mu = pm.Normal("mu", 0, 5, shape=3, transform=pm.distributions.transforms.ordered,
                       initval=np.array([-1.0, 0.0, 1.0]))
        sigma = pm.HalfNormal("sigma", 2, shape=3)
        pm.NormalMixture("y", w=w, mu=mu, sigma=sigma, observed=y)
    return m


@model
def poisson_mixture(rng):
    """pm.Mixture of two Poisson components."""
    y = np.where(rng.random(120) < 0.3, rng.poisson(1.0, 120), rng.poisson(8.0, 120))
    with pm.Model() as m:
        w = pm.Dirichlet("w", a=np.ones(2))
        lam = pm.Gamma("lam", 2, 0.3, shape=2)
        pm.Mixture("y", w=w, comp_dists=pm.Poisson.dist(mu=lam), observed=y)
    return m


@model
def mixture_of_families(rng):
    """pm.Mixture of a list of different component distributions."""
    y = np.where(rng.random(100) < 0.7, rng.normal(0, 1, 100), 4 + rng.standard_t(2, 100))
    with pm.Model() as m:
        w = pm.Dirichlet("w", a=np.ones(2))
        mu = pm.Normal("mu", 0, 5, shape=2)
        sigma = pm.HalfNormal("sigma", 2, shape=2)
        pm.Mixture("y", w=w, comp_dists=[pm.Normal.dist(mu[0], sigma[0]),
                                         pm.StudentT.dist(nu=3, mu=mu[1], sigma=sigma[1])],
                   observed=y)
    return m


# -- time series ---------------------------------------------------------------------------

@model
def gaussian_random_walk(rng):
    t = 100
    y = np.cumsum(rng.normal(scale=0.3, size=t)) + rng.normal(scale=0.5, size=t)
    with pm.Model() as m:
        sigma = pm.HalfNormal("sigma", 1)
        obs_sigma = pm.HalfNormal("obs_sigma", 1)
        x = pm.GaussianRandomWalk("x", sigma=sigma, init_dist=pm.Normal.dist(0, 1), steps=t - 1)
        pm.Normal("y", x, obs_sigma, observed=y)
    return m


@model
def stochastic_volatility(rng):
    """Log volatility as a GaussianRandomWalk, Student-t returns."""
    t = 120
    vol = np.exp(np.cumsum(rng.normal(scale=0.1, size=t)) - 2)
    returns = vol * rng.standard_t(5, t)
    with pm.Model() as m:
        step = pm.Exponential("step_size", 10)
        s = pm.GaussianRandomWalk("s", sigma=step, init_dist=pm.Normal.dist(-2, 1), shape=t)
        nu = pm.Exponential("nu", 0.1)
        pm.StudentT("r", nu=nu, lam=pt.exp(-2 * s), observed=returns)
    return m


@model
def ar2(rng):
    t = 150
    y = np.zeros(t)
    for i in range(2, t):
        y[i] = 0.2 + 0.6 * y[i - 1] - 0.2 * y[i - 2] + rng.normal(scale=0.5)
    with pm.Model() as m:
        rho = pm.Normal("rho", 0, 0.5, shape=3)
        sigma = pm.HalfNormal("sigma", 1)
        pm.AR("y", rho=rho, sigma=sigma, constant=True, ar_order=2,
              init_dist=pm.Normal.dist(0, 1, shape=2), observed=y)
    return m


@model
def scan_garch(rng):
    """GARCH(1,1) volatility recursion written with ``pytensor.scan``."""
    t = 100
    r = rng.normal(scale=0.1, size=t)
    with pm.Model() as m:
        omega = pm.HalfNormal("omega", 0.05)
        alpha = pm.Beta("alpha", 2, 5)
        beta = pm.Beta("beta", 5, 2)

        def step(r_prev, var_prev, omega, alpha, beta):
            return omega + alpha * r_prev ** 2 + beta * var_prev

        var, _ = pytensor.scan(step, sequences=[pt.as_tensor(r[:-1])],
                               outputs_info=[pt.as_tensor(np.float64(r.var()))],
                               non_sequences=[omega, alpha, beta])
        pm.Normal("r", 0, pt.sqrt(var), observed=r[1:])
    return m


# -- Gaussian process ----------------------------------------------------------------------

@model
def marginal_gp(rng):
    n = 40
    x = np.sort(rng.uniform(0, 10, n))[:, None]
    y = np.sin(x[:, 0]) + 0.2 * rng.normal(size=n)
    with pm.Model() as m:
        ls = pm.Gamma("ls", 2, 1)
        eta = pm.HalfNormal("eta", 2)
        cov = eta ** 2 * pm.gp.cov.ExpQuad(1, ls=ls)
        gp = pm.gp.Marginal(cov_func=cov)
        sigma = pm.HalfNormal("sigma", 1)
        gp.marginal_likelihood("y", X=x, y=y, sigma=sigma)
    return m


# -- zero-inflated, censored and truncated likelihoods -------------------------------------

@model
def zero_inflated_poisson(rng):
    x = rng.normal(size=150)
    y = np.where(rng.random(150) < 0.3, 0, rng.poisson(np.exp(1 + 0.5 * x)))
    with pm.Model() as m:
        psi = pm.Beta("psi", 1, 1)
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 1)
        pm.ZeroInflatedPoisson("y", psi=psi, mu=pt.exp(a + b * x), observed=y)
    return m


@model
def zero_inflated_negbin(rng):
    y = np.where(rng.random(150) < 0.25, 0, rng.negative_binomial(2.0, 0.3, 150))
    with pm.Model() as m:
        psi = pm.Beta("psi", 1, 1)
        mu = pm.Gamma("mu", 2, 0.5)
        alpha = pm.Gamma("alpha", 2, 1)
        pm.ZeroInflatedNegativeBinomial("y", psi=psi, mu=mu, alpha=alpha, observed=y)
    return m


@model
def censored_normal(rng):
    y = np.clip(0.3 + rng.normal(size=120), -1.0, 1.5)
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Censored("y", pm.Normal.dist(mu, sigma), lower=-1.0, upper=1.5, observed=y)
    return m


@model
def censored_weibull_survival(rng):
    """Right-censored survival times with a covariate (Weibull, log link on the scale)."""
    n = 100
    x = rng.integers(0, 2, n).astype(float)
    t = rng.weibull(1.5, n) * np.exp(1.0 + 0.5 * x)
    follow_up = 4.0
    with pm.Model() as m:
        shape = pm.Gamma("shape", 2, 1)
        a = pm.Normal("a", 0, 2)
        b = pm.Normal("b", 0, 1)
        pm.Censored("t", pm.Weibull.dist(alpha=shape, beta=pt.exp(a + b * x)), lower=None,
                    upper=follow_up, observed=np.minimum(t, follow_up))
    return m


@model
def truncated_normal(rng):
    y = 1.0 + rng.normal(size=200)
    y = y[(y > 0) & (y < 3)][:120]
    with pm.Model() as m:
        mu = pm.Normal("mu", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Truncated("y", pm.Normal.dist(mu, sigma), lower=0.0, upper=3.0, observed=y)
    return m


# -- simplex, ordered and covariance transforms --------------------------------------------

@model
def dirichlet_categorical(rng):
    y = rng.choice(4, size=150, p=[0.1, 0.2, 0.3, 0.4])
    with pm.Model() as m:
        p = pm.Dirichlet("p", a=np.ones(4))
        pm.Categorical("y", p=p, observed=y)
    return m


@model
def ordered_logistic(rng):
    n = 150
    x = rng.normal(size=(n, 2))
    latent = x @ np.array([1.0, -0.5]) + rng.logistic(size=n)
    y = np.digitize(latent, [-1.5, -0.3, 0.6, 1.8])
    with pm.Model() as m:
        beta = pm.Normal("beta", 0, 2, shape=2)
        cutpoints = pm.Normal("cutpoints", 0, 3, shape=4,
                              transform=pm.distributions.transforms.ordered,
                              initval=np.array([-1.5, -0.5, 0.5, 1.5]))
        pm.OrderedLogistic("y", eta=pt.dot(x, beta), cutpoints=cutpoints, observed=y)
    return m


@model
def mvnormal_lkj(rng):
    n, k = 100, 3
    corr = np.array([[1.0, 0.5, -0.3], [0.5, 1.0, 0.2], [-0.3, 0.2, 1.0]])
    sd = np.array([1.0, 2.0, 0.5])
    y = rng.multivariate_normal([1.0, -1.0, 0.0], corr * np.outer(sd, sd), size=n)
    with pm.Model() as m:
        chol, _, _ = pm.LKJCholeskyCov("chol", n=k, eta=2.0,
                                       sd_dist=pm.Exponential.dist(1.0, size=k),
                                       compute_corr=True)
        mu = pm.Normal("mu", 0, 5, shape=k)
        pm.MvNormal("y", mu=mu, chol=chol, observed=y)
    return m


# -- compiling and evaluating like PyMC's samplers ------------------------------------------

def logp_dlogp(m: pm.Model, mode):
    """The PyTensor function NUTS calls: one raveled float64 vector of the transformed free
    variables in, ``[logp, dlogp]`` out (``pm.sample`` -> ``init_nuts`` ->
    ``Model.logp_dlogp_function(ravel_inputs=True, **compile_kwargs)``, whose
    ``_pytensor_function`` the leapfrog integrator calls directly; the compile goes through
    ``pymc.pytensorf.compile``, which adds PyMC's rewrites to ``mode``)."""
    if mode == "AOT":
        import aotkernels.pytensor  # noqa: F401  (registers mode "AOT")
    with m:
        fn = m.logp_dlogp_function(ravel_inputs=True, mode=mode)
    fn.set_extra_values({})
    return fn._pytensor_function


def points(m: pm.Model, n: int = 3) -> list[np.ndarray]:
    """``n`` raveled points in the order ``logp_dlogp`` takes them: the transformed initial
    point, then that point plus uniform jitter (PyMC's ``init="jitter+..."`` adds U(-1, 1);
    the scale grows from 0.3 to 1), from a Generator seeded by the model's variables."""
    ip = m.initial_point()
    x0 = np.concatenate([np.ravel(ip[v.name]) for v in m.continuous_value_vars]).astype(float)
    rng = np.random.default_rng(zlib.crc32(",".join(ip).encode()))
    scales = np.linspace(0.3, 1.0, max(n - 1, 1))
    return [x0] + [x0 + rng.uniform(-s, s, x0.size) for s in scales[:n - 1]]


def reference(f) -> Callable[[np.ndarray], list[np.ndarray]]:
    """PyTensor's Python implementation of a compiled function's own graph: a clone of
    ``f``'s rewritten graph run by the Python linker (``PerformLinker``, what
    ``Mode(linker="py")`` uses), every node on its ``perform``, with ``f``'s shared values.

    The same graph, not a second compile: a mode-AOT function and its reference then differ
    only where mode AOT runs a kernel instead of ``perform``, and the model is rewritten once.
    (``Mode(linker="py", optimizer="fast_run")`` would fuse elementwise chains into
    ``Composite`` loops and FAST_COMPILE would skip the stabilising rewrites, such as
    ``log(sigmoid(x))`` -> ``-softplus(-x)``: other graphs, other rounding.)"""
    from pytensor.link.basic import PerformLinker

    fg = f.maker.fgraph.clone()
    thunk, ins, outs = PerformLinker().accept(fg).make_thunk()
    explicit = [cell for cell, i in zip(ins, f.maker.inputs) if not i.implicit]
    for cell, container, i in zip(ins, f.input_storage, f.maker.inputs):
        if i.implicit:  # shared variables: pm.Data, PyMC's weights
            cell.data = container.data
    n_out = len(f.maker.outputs)

    def call(*args):
        for cell, value in zip(explicit, args):
            cell.data = value
        thunk()
        return [cell.data for cell in outs[:n_out]]

    return call
