"""The metrics as edflow evaluation callbacks: ``callback(root, data_in, data_out, config) -> dict of floats``.

Fairness callbacks read per-example outputs from ``data_out.labels`` under the roles ``pred`` (predicted class),
``score`` (probability of class 1), ``label`` (true class) and ``group`` (protected attribute); the label names
default to the role names and are renamed in the config::

    fairness:
      keys: {label: class, group: color}   # data_out.labels names per role
      threshold: 0.5                        # pred = score >= threshold when there is no pred
      num_classes: 2                        # enables fairness discrepancy of pred (generated-sample attributes)
      bootstrap: 500                        # adds <metric>_median/_low/_high (95%); 0 = off
      seed: 0

The FID callback compares generated images in ``data_out`` (``samples``, ``reconstructions``; [-1, 1]) with the
cached statistics of ``data_in``'s images::

    fid:
      extractor: classifier | inception     # a name in the extractor registry (default classifier)
      run: mnist_fidnet                     # classifier: the trained classifier run whose features(x) are used
      inception_weights: weights/weights-inception-2015-12-05-6726825d.pth   # inception: the local weights file
      extractor_kwargs: {}                  # further keyword arguments of the registered factory
      keys: [samples, reconstructions]      # default: whichever of the two data_out has
      batch_size: 64
      cache_dir: ~/.cache/fairkit/fid_stats
      data_key: image
      reference_key: <name of data_in>      # default: class, length and a digest of its labels
      device: cuda:1                        # default: the run's device

Every callback also writes its results as ``<name>.yaml`` into ``root``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import yaml

from edflow.device import resolve_device
from edflow.first_stage import FirstStageError, load_stage, log_roots, resolve_run
from edflow.util import retrieve
from fairkit.metrics import fairness
from fairkit.metrics.extractors import (INCEPTION_WEIGHTS_SOURCE, FeatureExtractor, UnknownFeatureExtractor,
                                        as_extractor, cached_feature_extractor)
# The registry's builder under this module's name, which tests replace to check the device handling without a network.
from fairkit.metrics.extractors import create_feature_extractor as build_extractor
from fairkit.metrics.fid import compute_stats, fid, reference_stats

logger = logging.getLogger(__name__)

ROLES = ("pred", "score", "label", "group")
DEFAULT_CACHE_DIR = os.path.join(os.environ.get("FAIRKIT_CACHE", "~/.cache/fairkit"), "fid_stats")
GENERATED_KEYS = ("samples", "reconstructions")


def write_results(root, name: str, results: dict) -> Path:
    path = Path(root) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({key: float(value) for key, value in results.items()}, sort_keys=True))
    return path


def _section(config, name: str) -> dict:
    section = retrieve(config or {}, name, default=None)
    return dict(section) if section else {}


def output_arrays(data_out, config) -> dict:
    """The arrays of ``data_out.labels`` by role, named as in ``fairness/keys``; ``pred`` from ``score`` if absent."""
    settings = _section(config, "fairness")
    renamed = dict(settings.get("keys") or {})
    unknown = set(renamed) - set(ROLES)
    if unknown:
        raise KeyError(f"fairness/keys has unknown roles {sorted(unknown)}; the roles are {list(ROLES)}")
    names = {role: renamed.get(role, role) for role in ROLES}
    labels = data_out.labels
    arrays = {role: np.asarray(labels[name]) for role, name in names.items() if name in labels}
    if "pred" not in arrays and "score" in arrays:
        scores = fairness._as_1d("score", arrays["score"])
        arrays["pred"] = (scores >= float(settings.get("threshold", 0.5))).astype(np.int64)
    return arrays


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0, 1)).all())


@dataclass(frozen=True)
class Metric:
    """A metric function with the roles it reads (in argument order) and what they must look like."""

    function: Callable
    roles: tuple
    binary: tuple = ()  # roles that must be {0, 1} labels
    two_groups: bool = False
    per_group: bool = False
    needs_config: tuple = field(default=())  # fairness/<key> values passed as keyword arguments

    def problem(self, arrays: dict, settings: dict) -> str | None:
        """Why the metric cannot run on these outputs, or None."""
        missing = [role for role in self.roles if role not in arrays]
        if missing:
            return f"data_out.labels lacks the roles {missing} (rename them with fairness/keys)"
        not_binary = [role for role in self.binary if not _is_binary(arrays[role])]
        if not_binary:
            return f"roles {not_binary} are not binary {{0, 1}} labels"
        if self.two_groups and len(np.unique(arrays["group"])) != 2:
            return "it compares exactly two protected groups"
        absent = [key for key in self.needs_config if key not in settings]
        if absent:
            return f"the config lacks {['fairness/' + key for key in absent]}"
        return None

    def __call__(self, arrays: dict, settings: dict):
        options = {key: settings[key] for key in self.needs_config}
        return self.function(*(arrays[role] for role in self.roles), **options)


def _l1_discrepancy(pred_attr, num_classes):
    return fairness.fairness_discrepancy(pred_attr, num_classes, norm=1)


METRICS = {
    "accuracy": Metric(fairness.accuracy, ("label", "pred")),
    "accuracy_group": Metric(fairness.accuracy_per_group, ("label", "pred", "group"), per_group=True),
    "positive_rate_group": Metric(fairness.positive_rate_per_group, ("pred", "group"), ("pred",), per_group=True),
    "demographic_parity_difference": Metric(fairness.demographic_parity_difference, ("pred", "group"), ("pred",)),
    "tpr_difference": Metric(fairness.tpr_difference, ("label", "pred", "group"), ("label", "pred")),
    "tnr_difference": Metric(fairness.tnr_difference, ("label", "pred", "group"), ("label", "pred")),
    "equalized_odds_difference": Metric(fairness.equalized_odds_difference, ("label", "pred", "group"),
                                        ("label", "pred")),
    "deo": Metric(fairness.deo, ("label", "pred", "group"), ("label", "pred"), two_groups=True),
    "bias_amplification": Metric(fairness.bias_amplification, ("label", "pred", "group")),
    "score_kl": Metric(fairness.score_histogram_kl, ("score", "group"), two_groups=True),
    "hgr": Metric(fairness.hgr_correlation, ("pred", "group")),
    "average_precision": Metric(fairness.average_precision, ("label", "score"), ("label",)),
    "f1": Metric(fairness.f1_score, ("label", "pred"), ("label", "pred")),
    "fairness_discrepancy": Metric(fairness.fairness_discrepancy, ("pred",), needs_config=("num_classes",)),
    "fairness_discrepancy_l1": Metric(_l1_discrepancy, ("pred",), needs_config=("num_classes",)),
    "kl_to_uniform": Metric(fairness.kl_to_uniform, ("pred",), needs_config=("num_classes",)),
}


def _evaluate(name: str, metric: Metric, arrays: dict, settings: dict) -> dict:
    value = metric(arrays, settings)
    if metric.per_group:
        return {f"{name}_{group}": rate for group, rate in value.items()}
    results = {name: value}
    n = int(settings.get("bootstrap", 0) or 0)
    if n:
        roles = metric.roles

        def resampled(*columns):
            return metric(dict(zip(roles, columns)), settings)

        median, low, high = fairness.bootstrap(resampled, *(arrays[r] for r in roles), n=n,
                                               seed=int(settings.get("seed", 0)))
        results.update({f"{name}_median": median, f"{name}_low": low, f"{name}_high": high})
    return results


def metric_callback(name: str) -> Callable:
    """An eval callback computing METRICS[name]; it fails with the reason when the outputs do not fit."""
    metric = METRICS[name]

    def callback(root, data_in, data_out, config) -> dict:
        settings = _section(config, "fairness")
        arrays = output_arrays(data_out, config)
        problem = metric.problem(arrays, settings)
        if problem:
            raise ValueError(f"cannot compute {name}: {problem}")
        results = _evaluate(name, metric, arrays, settings)
        write_results(root, name, results)
        return results

    callback.__name__ = callback.__qualname__ = f"{name}_callback"
    return callback


def fairness_callback(root, data_in, data_out, config) -> dict:
    """Every metric of METRICS that the outputs in data_out allow."""
    settings = _section(config, "fairness")
    arrays = output_arrays(data_out, config)
    results = {}
    for name, metric in METRICS.items():
        if metric.problem(arrays, settings) is None:
            try:
                results.update(_evaluate(name, metric, arrays, settings))
            except ValueError as error:  # e.g. no positive labels in a tiny evaluation: skip, do not lose the rest
                logger.warning("fairness: %s skipped: %s", name, error)
    if not results:
        raise ValueError(f"no fairness metric fits data_out.labels {sorted(data_out.labels)}; map them to the roles "
                         f"{list(ROLES)} with fairness/keys")
    write_results(root, "fairness", results)
    return results


accuracy_callback = metric_callback("accuracy")
accuracy_group_callback = metric_callback("accuracy_group")
positive_rate_group_callback = metric_callback("positive_rate_group")
demographic_parity_callback = metric_callback("demographic_parity_difference")
tpr_difference_callback = metric_callback("tpr_difference")
tnr_difference_callback = metric_callback("tnr_difference")
equalized_odds_callback = metric_callback("equalized_odds_difference")
deo_callback = metric_callback("deo")
bias_amplification_callback = metric_callback("bias_amplification")
score_kl_callback = metric_callback("score_kl")
hgr_callback = metric_callback("hgr")
average_precision_callback = metric_callback("average_precision")
f1_callback = metric_callback("f1")
fairness_discrepancy_callback = metric_callback("fairness_discrepancy")


def extractor_options(settings: Mapping) -> dict:
    """The keyword arguments of the registry's factory for the extractor a ``fid`` section names (not ``classifier``,
    which is loaded from ``fid/run``): ``fid/inception_weights`` for ``inception``, then ``fid/extractor_kwargs``."""
    name = settings.get("extractor", "classifier")
    options = {"weights_path": settings.get("inception_weights")} if name == "inception" else {}
    options.update(settings.get("extractor_kwargs") or {})
    return options


def configured_extractor(settings: Mapping, *, device="cpu", load: Callable | None = None) -> FeatureExtractor:
    """The feature extractor a ``fid`` section names (``extractor``, default ``classifier``), on ``device``, built
    once per process and shared by every method (the registry's cache).

    ``classifier`` is the classifier run ``fid/run``, loaded by ``load`` (default edflow's ``load_stage``); other
    names are built by the registry with :func:`extractor_options`.
    """
    name = settings.get("extractor", "classifier")
    device = str(device)
    if name == "classifier":
        if not settings.get("run"):
            raise ValueError("fid/extractor is 'classifier' but no classifier was given: set fid/run to a trained "
                             "classifier run (e.g. fid: {extractor: classifier, run: mnist_fidnet}, trained with "
                             "edflow -b configs/mnist_fidnet.yaml -t), or set fid/extractor: inception")
        run, load = str(settings["run"]), load or load_stage
        # a run name means the newest such run under the log root, so the root (and the working directory, for
        # relative paths) belong to the key
        key = ("classifier", os.path.abspath(run), tuple(os.path.abspath(root) for root in log_roots()), device, load)
        return cached_feature_extractor(key, lambda: build_extractor("classifier", model=load({"run": run}, device)))
    options = extractor_options(settings)
    key = (name, repr(sorted(options.items())), device)
    try:
        return cached_feature_extractor(key, lambda: build_extractor(name, **options).to(device))
    except UnknownFeatureExtractor as error:
        raise UnknownFeatureExtractor(f"fid/extractor: {error}") from None


def fid_preflight(config) -> list[str]:
    """For ``edflow``'s preflight: what the ``fid`` section needs and lacks (the classifier run; the Inception
    weights file and torch-fidelity), each with where to get it. A section without an extractor needs nothing."""
    settings = _section(config, "fid")
    name = settings.get("extractor")
    problems = []
    if name == "classifier" and settings.get("run"):
        try:
            resolve_run(str(settings["run"]))
        except FirstStageError as error:
            problems.append(f"fid/run: {error}")
    elif name == "inception" and settings.get("inception_weights"):
        path = str(settings["inception_weights"])
        if not os.path.isfile(os.path.expanduser(path)):
            problems.append(f"fid/inception_weights: {path} does not exist ({os.path.abspath(path)}); download "
                            f"{INCEPTION_WEIGHTS_SOURCE} there, or set fid.inception_weights=<its path>")
        if importlib.util.find_spec("torch_fidelity") is None:
            problems.append("fid/extractor is inception, which needs torch-fidelity: pip install 'fairtoolkit[paper]'")
    return problems


def make_fid_callback(extractor=None, keys=None, name: str = "fid") -> Callable:
    """An eval callback giving ``fid_<key>`` for generated images in data_out against data_in's images.

    ``extractor``: a FeatureExtractor, or a classifier (module with ``features(x)``, or a callable images ->
    features); None uses the one named in ``fid/extractor`` (:func:`configured_extractor`).
    """
    given = None if extractor is None else as_extractor(extractor)

    def fid_callback(root, data_in, data_out, config) -> dict:
        settings = _section(config, "fid")
        # the extractor runs where the run runs, unless fid/device names another device
        settings["device"] = resolve_device(settings.get("device") or (config or {}).get("device") or "auto")
        feature_extractor = given if given is not None else configured_extractor(settings,
                                                                                  device=settings["device"])
        output_keys = list(keys or settings.get("keys") or [k for k in GENERATED_KEYS if k in data_out.labels])
        missing = [k for k in output_keys if k not in data_out.labels]
        if not output_keys or missing:
            raise KeyError(f"no generated images under {missing or list(GENERATED_KEYS)} in data_out.labels "
                           f"{sorted(data_out.labels)}; set fid/keys")
        batch_size = int(settings.get("batch_size", 64))
        cache_dir = os.path.expanduser(settings.get("cache_dir", DEFAULT_CACHE_DIR))
        reference = reference_stats(data_in, feature_extractor, cache_dir, key=settings.get("reference_key"),
                                    batch_size=batch_size, image_key=settings.get("data_key", "image"))
        results = {}
        for key in output_keys:
            generated = compute_stats(feature_extractor, np.asarray(data_out.labels[key]), batch_size,
                                      desc=f"FID features ({key})")
            results[f"fid_{key}"] = fid(generated, reference)
        write_results(root, name, results)
        return results

    fid_callback.__name__ = fid_callback.__qualname__ = f"{name}_callback"
    return fid_callback


fid_callback = make_fid_callback()
