"""Metrics shared by the methods: streaming FID/KID over pluggable feature extractors, fairness metrics, and both
as edflow evaluation callbacks."""
from fairkit.metrics.callbacks import (METRICS, configured_extractor, fairness_callback, fid_callback,
                                       make_fid_callback, metric_callback, output_arrays, write_results)
from fairkit.metrics.extractors import (ClassifierExtractor, FeatureExtractor, InceptionExtractor,
                                        UnknownFeatureExtractor, as_extractor, available_feature_extractors,
                                        cached_feature_extractor, clear_feature_extractor_cache,
                                        create_feature_extractor, register_feature_extractor, to_uint8_rgb,
                                        weights_fingerprint)
from fairkit.metrics.fairness import (accuracy, accuracy_per_group, attribute_distribution, average_precision,
                                      bias_amplification, bootstrap, demographic_parity_difference, deo,
                                      equalized_odds_difference, f1_optimal_threshold, f1_score,
                                      fairness_discrepancy, hgr_correlation, kl_divergence, kl_to_uniform,
                                      per_class_score_kl, positive_rate_per_group, score_histogram_kl,
                                      smoothed_histograms, tnr_difference, top_k_threshold, tpr_difference,
                                      true_negative_rate_per_group, true_positive_rate_per_group)
from fairkit.metrics.fid import (FrechetStats, compute_stats, dataset_cache_key, extract_features, fid,
                                 fid_from_features, frechet_distance, iterate_images, kid, reference_stats)

__all__ = [
    # FID / KID
    "FrechetStats", "frechet_distance", "fid", "fid_from_features", "kid", "compute_stats", "extract_features",
    "reference_stats", "dataset_cache_key", "iterate_images",
    # feature extractors
    "FeatureExtractor", "InceptionExtractor", "ClassifierExtractor", "register_feature_extractor",
    "create_feature_extractor", "available_feature_extractors", "UnknownFeatureExtractor", "cached_feature_extractor",
    "clear_feature_extractor_cache", "configured_extractor", "as_extractor", "to_uint8_rgb", "weights_fingerprint",
    # fairness
    "accuracy", "accuracy_per_group", "positive_rate_per_group", "true_positive_rate_per_group",
    "true_negative_rate_per_group", "demographic_parity_difference", "tpr_difference", "tnr_difference",
    "equalized_odds_difference", "deo", "bias_amplification", "smoothed_histograms", "kl_divergence",
    "score_histogram_kl", "per_class_score_kl", "hgr_correlation", "attribute_distribution", "fairness_discrepancy",
    "kl_to_uniform",
    "average_precision", "f1_score", "f1_optimal_threshold", "top_k_threshold", "bootstrap",
    # callbacks
    "METRICS", "metric_callback", "fairness_callback", "make_fid_callback", "fid_callback", "output_arrays",
    "write_results",
]
