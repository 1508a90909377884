"""Label-free estimation on synthetic turns with known truth: calibration, coverage, shift, domain, round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.estimation import (
    DomainReference,
    IntentCalibration,
    WerRegressor,
    domain_check,
    estimate_accuracy,
    estimate_wer,
    expected_calibration_error,
    extrapolated,
    fit_domain_reference,
    fit_intent_calibration,
    fit_wer_regressor,
    held_out_half,
)

N_CAL = 1000


def intent_turns(rng: np.random.Generator, n: int, a: float = 5.0, b: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """An overconfident intent model: true P(correct | confidence c) = c**2."""
    confidence = rng.beta(a, b, n)
    return confidence, rng.random(n) < confidence**2


def asr_turns(
    rng: np.random.Generator, n: int, snr_shift: float = 0.0, logprob_shift: float = 0.0, snr_missing: float = 0.15
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Turns whose word errors depend on avg_logprob and snr (negative binomial around a log-linear mean)."""
    duration = rng.uniform(1.0, 8.0, n)
    ref = rng.poisson(2.6 * duration) + 1
    snr = rng.normal(20.0, 6.0, n) + snr_shift
    logprob = np.minimum(-0.02, -0.3 + 0.012 * (snr - 20.0) + rng.normal(0.0, 0.1, n)) + logprob_shift
    mean_errors = ref * np.exp(-2.2 + 3.0 * (-0.3 - logprob) - 0.03 * (snr - 20.0))
    errors = rng.poisson(rng.gamma(2.0, mean_errors / 2.0))
    words = np.maximum(0, ref - rng.binomial(errors, 0.3) + rng.binomial(errors, 0.2)).astype(float)
    features = {
        "avg_logprob": logprob,
        "no_speech_prob": rng.beta(1.0, 20.0, n),
        "duration_s": duration,
        "words": words,
        "words_per_s": words / duration,
        "dbfs": rng.normal(-25.0, 4.0, n),
        "snr_db": np.where(rng.random(n) < snr_missing, np.nan, snr),
    }
    return features, errors.astype(float), ref.astype(float)


def wer_of(errors: np.ndarray, ref: np.ndarray) -> float:
    return float(errors.sum() / ref.sum())


@pytest.fixture(scope="module")
def calibration() -> IntentCalibration:
    confidence, correct = intent_turns(np.random.default_rng(1), N_CAL)
    return fit_intent_calibration(confidence, correct, [f"turn-{i}" for i in range(N_CAL)], seed=1)


@pytest.fixture(scope="module")
def regressor() -> WerRegressor:
    features, errors, ref = asr_turns(np.random.default_rng(2), N_CAL)
    return fit_wer_regressor(features, errors, ref, [f"turn-{i}" for i in range(N_CAL)], seed=2)


# ----- intent accuracy -------------------------------------------------------------------------


def test_ece_by_hand() -> None:
    # two equal-mass bins: {0.5, 0.6} -> |0.55 - 0.5| = 0.05; {0.8, 0.9} -> |0.85 - 1.0| = 0.15; mean 0.10
    assert expected_calibration_error([0.9, 0.5, 0.8, 0.6], [1, 1, 1, 0], n_bins=2) == pytest.approx(0.10)
    assert expected_calibration_error([0.7, 0.7], [1, 0], n_bins=1) == pytest.approx(0.2)


def test_split_is_a_stable_hash_of_the_keys() -> None:
    keys = [f"turn-{i}" for i in range(2000)]
    held = held_out_half(keys)
    assert 0.45 < held.mean() < 0.55
    assert np.array_equal(held_out_half(keys[::-1]), held[::-1])


def test_calibration_removes_overconfidence(calibration: IntentCalibration) -> None:
    assert calibration.n_held_out > 400
    assert calibration.ece_raw > 0.12
    # ~500 held-out turns in 10 bins: even a perfect model shows ECE ~0.05 (ece_floor); calibrated sits near it
    assert calibration.ece_calibrated < min(calibration.ece_raw / 2, calibration.ece_floor + 0.03)
    grid = np.array([0.5, 0.7, 0.9])
    assert np.allclose(calibration.calibrate(grid), grid**2, atol=0.1)


def test_cbpe_tracks_a_fresh_sample(calibration: IntentCalibration) -> None:
    rng = np.random.default_rng(3)
    confidence, correct = intent_turns(rng, 400)
    estimate = estimate_accuracy(calibration, confidence, n_boot=400, seed=3)
    assert estimate.n == 400
    assert abs(estimate.value - np.mean(confidence**2)) < 0.03
    assert estimate.low <= correct.mean() <= estimate.high
    assert estimate.low < estimate.value < estimate.high


def test_cbpe_interval_covers_the_truth() -> None:
    """Each repeat: a fresh calibration set (so calibration uncertainty is tested too) and 400 fresh turns."""
    rng = np.random.default_rng(4)
    covered, gaps, widths = 0, [], []
    for repeat in range(40):
        confidence, correct = intent_turns(rng, N_CAL)
        fitted = fit_intent_calibration(confidence, correct, range(N_CAL), seed=repeat, n_boot=50)
        production, outcomes = intent_turns(rng, 400)
        estimate = estimate_accuracy(fitted, production, n_boot=300, seed=repeat)
        covered += estimate.low <= outcomes.mean() <= estimate.high
        gaps.append(abs(estimate.value - outcomes.mean()))
        widths.append(estimate.high - estimate.low)
    assert covered >= 34  # >= 85% of 40
    assert np.mean(gaps) < 0.03
    assert np.mean(widths) < 0.15


def test_cbpe_follows_covariate_shift(calibration: IntentCalibration) -> None:
    """Production confidences lower than in calibration (Beta(2,2) vs 5,2): raw confidence misleads, CBPE does not."""
    rng = np.random.default_rng(5)
    covered, gaps = 0, []
    for repeat in range(20):
        confidence, correct = intent_turns(rng, 400, a=2.0, b=2.0)
        expected = float(np.mean(confidence**2))
        assert confidence.mean() - expected > 0.1
        estimate = estimate_accuracy(calibration, confidence, n_boot=300, seed=repeat)
        gaps.append(abs(estimate.value - expected))
        covered += estimate.low <= correct.mean() <= estimate.high
    assert max(gaps) < 0.03
    assert covered >= 17  # >= 85% of 20


def heard_requests(rng: np.random.Generator, n: int, snr_shift: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                                   np.ndarray]:
    """Requests whose intent is right less often when the recogniser struggles, at the same intent confidence:
    P(correct) = c**2 * sigmoid(4 + 8 * (avg_logprob + 0.3)) (garbled words read confidently)."""
    features, _, _ = asr_turns(rng, n, snr_shift=snr_shift, snr_missing=0.0)
    confidence = rng.beta(5.0, 2.0, n)
    p = confidence**2 / (1.0 + np.exp(-(4.0 + 8.0 * (features["avg_logprob"] + 0.3))))
    return confidence, features, rng.random(n) < p


def test_asr_features_tell_a_garbled_request_from_a_clear_one_and_extrapolation_widens_the_interval() -> None:
    rng = np.random.default_rng(17)
    confidence, features, correct = heard_requests(rng, N_CAL)
    with_asr = fit_intent_calibration(confidence, correct, range(N_CAL), features, seed=17, n_boot=60)
    alone = fit_intent_calibration(confidence, correct, range(N_CAL), seed=17, n_boot=60)
    assert with_asr.feature_names and with_asr.ece_calibrated <= alone.ece_calibrated + 0.01
    # a noisier channel: same confidences, worse audio; the confidence alone cannot see it
    noisy_conf, noisy, noisy_correct = heard_requests(rng, 400, snr_shift=-25.0)
    truth = noisy_correct.mean()
    reference = fit_domain_reference(features)
    domain = domain_check(reference, noisy)
    assert domain.outside and "below" in domain.detail
    beyond = extrapolated(with_asr, reference, noisy)
    # by chance ~1% of calibration-like turns lie beyond each feature's range on its worse side
    assert beyond.mean() > 0.3 and extrapolated(with_asr, reference, features).mean() < 0.1
    estimate = estimate_accuracy(with_asr, noisy_conf, noisy, n_boot=300, domain=domain, beyond=beyond)
    blind = estimate_accuracy(alone, noisy_conf, n_boot=300)
    assert abs(estimate.value - truth) < abs(blind.value - truth) - 0.02
    assert estimate.outside_domain and estimate.low <= truth <= estimate.high
    inside = estimate_accuracy(with_asr, noisy_conf, noisy, n_boot=300, beyond=beyond)  # no domain verdict: no widening
    assert estimate.low < inside.low and estimate.value == inside.value
    with pytest.raises(ValueError, match="needs the turns' ASR features"):
        estimate_accuracy(with_asr, noisy_conf)
    back = IntentCalibration.from_dict(json.loads(json.dumps(with_asr.to_dict(), allow_nan=False)))
    assert estimate_accuracy(back, noisy_conf, noisy, n_boot=100) == estimate_accuracy(with_asr, noisy_conf, noisy,
                                                                                       n_boot=100)


def test_no_turns_gives_an_empty_estimate(calibration: IntentCalibration, regressor: WerRegressor) -> None:
    assert estimate_accuracy(calibration, []).n == 0
    assert np.isnan(estimate_accuracy(calibration, []).value)
    empty = {name: np.array([]) for name in regressor.design.names}
    assert estimate_wer(regressor, empty).n == 0


# ----- ASR WER ---------------------------------------------------------------------------------


def test_wer_regressor_beats_a_constant_on_held_out_batches(regressor: WerRegressor) -> None:
    assert regressor.n_held_out > 400
    assert regressor.mae < 0.03
    assert regressor.mae <= regressor.baseline_mae
    assert regressor.dispersion > 0


def test_wer_estimate_tracks_a_fresh_sample(regressor: WerRegressor) -> None:
    features, errors, ref = asr_turns(np.random.default_rng(6), 400)
    estimate = estimate_wer(regressor, features, n_boot=400, seed=6)
    assert abs(estimate.value - wer_of(errors, ref)) < 0.05
    assert estimate.low <= wer_of(errors, ref) <= estimate.high
    assert not estimate.outside_domain


def test_wer_interval_covers_in_most_repeats(regressor: WerRegressor) -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for repeat in range(30):
        features, errors, ref = asr_turns(rng, 400)
        estimate = estimate_wer(regressor, features, n_boot=300, seed=repeat)
        covered += estimate.low <= wer_of(errors, ref) <= estimate.high
    assert covered >= 24  # >= 80% of 30


def test_wer_follows_noisier_audio(regressor: WerRegressor) -> None:
    base_features, base_errors, base_ref = asr_turns(np.random.default_rng(8), 400)
    features, errors, ref = asr_turns(np.random.default_rng(8), 400, snr_shift=-8.0)
    assert wer_of(errors, ref) > wer_of(base_errors, base_ref) + 0.03
    estimate = estimate_wer(regressor, features, n_boot=300, seed=8)
    assert abs(estimate.value - wer_of(errors, ref)) < 0.05
    assert estimate.value > estimate_wer(regressor, base_features, n_boot=10).value


def test_unknown_snr_is_imputed(regressor: WerRegressor) -> None:
    features, errors, ref = asr_turns(np.random.default_rng(9), 400, snr_missing=1.0)
    estimate = estimate_wer(regressor, features, n_boot=300, seed=9)
    assert np.isfinite([estimate.value, estimate.low, estimate.high]).all()
    assert abs(estimate.value - wer_of(errors, ref)) < 0.05
    # a calibration set that never lacked snr still copes with production turns that do
    complete, cal_errors, cal_ref = asr_turns(np.random.default_rng(10), 300, snr_missing=0.0)
    fitted = fit_wer_regressor(complete, cal_errors, cal_ref, range(300), n_boot=20)
    assert np.isfinite(estimate_wer(fitted, features, n_boot=50).value)


def test_a_small_golden_set_gives_a_wide_but_sane_interval() -> None:
    rng = np.random.default_rng(16)
    features, errors, ref = asr_turns(rng, 90)
    fitted = fit_wer_regressor(features, errors, ref, range(90), n_boot=50)
    production, production_errors, production_ref = asr_turns(rng, 200)
    estimate = estimate_wer(fitted, production, n_boot=200)
    assert 0.0 < estimate.low < estimate.value < estimate.high < 0.5
    assert abs(estimate.value - wer_of(production_errors, production_ref)) < 0.05


def test_features_as_a_matrix_with_names(regressor: WerRegressor) -> None:
    features, _, _ = asr_turns(np.random.default_rng(11), 50)
    names = list(reversed(regressor.design.names))
    matrix = np.column_stack([features[name] for name in names])
    by_name = estimate_wer(regressor, features, n_boot=50)
    assert estimate_wer(regressor, matrix, n_boot=50, names=names) == by_name


# ----- domain ----------------------------------------------------------------------------------


def test_domain_check_passes_turns_like_calibration(regressor: WerRegressor) -> None:
    rng = np.random.default_rng(12)
    assert not domain_check(regressor.domain, asr_turns(rng, 400)[0]).outside
    flagged = sum(domain_check(regressor.domain, asr_turns(rng, 10)[0]).outside for _ in range(50))
    assert flagged <= 2


def test_domain_check_flags_far_shifted_turns(regressor: WerRegressor) -> None:
    rng = np.random.default_rng(13)
    for n in (10, 200):
        shifted, _, _ = asr_turns(rng, n, snr_shift=-20.0, logprob_shift=-0.6, snr_missing=0.0)
        check = domain_check(regressor.domain, shifted)
        assert check.outside and check.share_outside > 0.5
        assert "snr_db" in check.detail or "avg_logprob" in check.detail
    assert estimate_wer(regressor, shifted, n_boot=50).outside_domain


def test_domain_check_from_raw_calibration_features() -> None:
    rng = np.random.default_rng(14)
    calibration_features = asr_turns(rng, 300)[0]
    assert not domain_check(calibration_features, asr_turns(rng, 20)[0]).outside
    assert domain_check(calibration_features, asr_turns(rng, 20, snr_shift=-20.0, logprob_shift=-0.6)[0]).outside


# ----- serialisation ---------------------------------------------------------------------------


def test_round_trip_gives_identical_estimates(calibration: IntentCalibration, regressor: WerRegressor) -> None:
    rng = np.random.default_rng(15)
    confidence, _ = intent_turns(rng, 100)
    features, _, _ = asr_turns(rng, 100)
    calibration_back = IntentCalibration.from_dict(json.loads(json.dumps(calibration.to_dict(), allow_nan=False)))
    regressor_back = WerRegressor.from_dict(json.loads(json.dumps(regressor.to_dict(), allow_nan=False)))
    accuracy = estimate_accuracy(calibration, confidence, n_boot=200)
    assert estimate_accuracy(calibration_back, confidence, n_boot=200) == accuracy
    assert estimate_wer(regressor_back, features, n_boot=200) == estimate_wer(regressor, features, n_boot=200)
    assert calibration_back.ece_calibrated == calibration.ece_calibrated
    domain_back = DomainReference.from_dict(regressor.domain.to_dict())
    assert domain_check(domain_back, features) == domain_check(regressor.domain, features)
